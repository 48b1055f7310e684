/**
 * PKCS#11 URIs (src/signer/pkcs11-uri.ts) against RFC 7512: every example of §3.3 parses to the
 * attributes it spells, percent-encoding decodes to octets (id) and UTF-8 text (the rest), and
 * each URI the §2.3 grammar refuses is refused with a message that names the problem and never
 * quotes a PIN.
 */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { CaError } from '../../src/errors.js';
import { describePkcs11Uri, parsePkcs11Uri, type Pkcs11Uri } from '../../src/signer/pkcs11-uri.js';

/** The attributes a parsed URI holds, PIN included, as plain data to compare. */
function fields(uri: Pkcs11Uri): Record<string, unknown> {
  const out: Record<string, unknown> = { ...uri, pinValue: uri.pinValue };
  if (uri.id) out.id = uri.id.toString('hex');
  out.vendorPath = Object.fromEntries(uri.vendorPath);
  out.vendorQuery = Object.fromEntries(uri.vendorQuery);
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

const none = { vendorPath: {}, vendorQuery: {} };

describe('RFC 7512 §3.3 examples', () => {
  const examples: [string, Record<string, unknown>][] = [
    ['pkcs11:', none],
    ['pkcs11:object=my-pubkey;type=public', { ...none, object: 'my-pubkey', type: 'public' }],
    ['pkcs11:object=my-key;type=private?pin-source=file:/etc/token', { ...none, object: 'my-key', type: 'private', pinSource: 'file:/etc/token' }],
    [
      'pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin',
      {
        ...none, token: 'The Software PKCS#11 Softtoken', manufacturer: 'Snake Oil, Inc.', model: '1.0', object: 'my-certificate', type: 'cert',
        id: '69953e5cf4bdec91', serial: '', pinSource: 'file:/etc/token_pin',
      },
    ],
    ['pkcs11:object=my-sign-key;type=private?module-name=mypkcs11', { ...none, object: 'my-sign-key', type: 'private', moduleName: 'mypkcs11' }],
    ['pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1', { ...none, object: 'my-sign-key', type: 'private', modulePath: '/mnt/libmypkcs11.so.1' }],
    [
      'pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin',
      { ...none, token: 'Software PKCS#11 softtoken', manufacturer: 'Snake Oil, Inc.', pinValue: 'the-pin' },
    ],
    ['pkcs11:slot-description=Sun%20Metaslot', { ...none, slotDescription: 'Sun Metaslot' }],
    [
      'pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23',
      { ...none, libraryManufacturer: 'Snake Oil, Inc.', libraryDescription: 'Soft Token Library', libraryVersion: { major: 1, minor: 23 } },
    ],
    [
      'pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ca%fe%04%05%06',
      { ...none, token: 'My token% created by Joe', libraryVersion: { major: 3, minor: 0 }, id: '010203baddcafe040506' },
    ],
    ['pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert', { ...none, token: 'A name with a substring %;', object: 'my-certificate', type: 'cert' }],
    ['pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert', { ...none, token: 'Name with a small A with acute: \u00e1', object: 'my-certificate', type: 'cert' }],
    [
      'pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b',
      { token: 'my-token', object: 'my-certificate', type: 'cert', pinSource: 'file:/etc/token_pin', vendorPath: { 'vendor-aaa': 'value-a' }, vendorQuery: { 'vendor-bbb': 'value-b' } },
    ],
  ];
  for (const [uri, expected] of examples) {
    it(uri, () => assert.deepEqual(fields(parsePkcs11Uri(uri)), expected));
  }
});

describe('what the grammar allows', () => {
  it('reads the scheme case-insensitively (RFC 3986 §3.1), and the grammar\'s names and type values too (RFC 5234 §2.3)', () => {
    assert.equal(parsePkcs11Uri('PKCS11:object=k').object, 'k');
    const uri = parsePkcs11Uri('pkcs11:Object=k;TYPE=Private?Module-Path=/m.so&X-Vendor=1');
    assert.deepEqual([uri.object, uri.type, uri.modulePath, [...uri.vendorQuery.keys()]], ['k', 'private', '/m.so', ['X-Vendor']]);
  });

  it('decodes id to octets and keeps every byte value, 00 and FF included', () => {
    assert.deepEqual([...parsePkcs11Uri('pkcs11:id=%00%FF%7f;object=k').id!], [0x00, 0xff, 0x7f]);
  });

  it('reads a slot-id as an integer of any size (CK_SLOT_ID is a CK_ULONG)', () => {
    assert.equal(parsePkcs11Uri('pkcs11:slot-id=18446744073709551615').slotId, 18446744073709551615n);
  });

  it('allows = in a path value and / ? | in a query value unencoded', () => {
    const uri = parsePkcs11Uri('pkcs11:object=a=b?module-path=/usr/lib/x?y|z.so');
    assert.equal(uri.object, 'a=b');
    assert.equal(uri.modulePath, '/usr/lib/x?y|z.so');
  });

  it('keeps pin-value out of JSON and util.inspect, yet readable', () => {
    const uri = parsePkcs11Uri('pkcs11:object=k?pin-value=4711-secret');
    assert.equal(uri.pinValue, '4711-secret');
    assert.doesNotMatch(JSON.stringify(uri), /4711/);
    assert.doesNotMatch(inspect(uri, { depth: 5 }), /4711/);
  });

  it('describes the token and object it names, without the query', () => {
    const uri = parsePkcs11Uri('pkcs11:token=CA%20Token;object=issuing;id=%0a%0b?pin-value=4711');
    assert.equal(describePkcs11Uri(uri), 'token "CA Token", object "issuing", id 0a0b');
  });
});

describe('what the grammar refuses', () => {
  const refusals: [string, string, string][] = [
    ['another scheme', 'pkcs12:object=k', 'PKCS#11 URI: does not start with pkcs11:'],
    ['a repeated attribute', 'pkcs11:object=a;object=b', 'PKCS#11 URI: object appears more than once'],
    ['a repeated query attribute', 'pkcs11:object=a?module-path=/a&module-path=/b', 'PKCS#11 URI: module-path appears more than once'],
    ['an unencoded space', 'pkcs11:token=My Token', "PKCS#11 URI: in token, ' ' must be percent-encoded"],
    ['an unencoded / in the path', 'pkcs11:object=a/b', "PKCS#11 URI: in object, '/' must be percent-encoded"],
    ['a % without two hex digits', 'pkcs11:id=%0g', "PKCS#11 URI: in id, '%' not followed by two hex digits"],
    ['a % at the end', 'pkcs11:id=%0', "PKCS#11 URI: in id, '%' not followed by two hex digits"],
    ['an unknown type', 'pkcs11:type=key', 'PKCS#11 URI: type \'key\' is not one of public, private, cert, secret-key, data'],
    ['a slot-id that is not a number', 'pkcs11:slot-id=0x1', 'PKCS#11 URI: slot-id is not a decimal number'],
    ['a malformed library-version', 'pkcs11:library-version=1.', 'PKCS#11 URI: library-version is not M or M.N'],
    ['an empty attribute', 'pkcs11:object=a;;id=%01', "PKCS#11 URI: an empty attribute in the path (a stray ';')"],
    ['an attribute without =', 'pkcs11:object', "PKCS#11 URI: path attribute 'object' is not of the form name=value"],
    ['text that is not UTF-8', 'pkcs11:token=%C3%28', 'PKCS#11 URI: token is not UTF-8 once percent-decoded'],
    ['pin-value with pin-source', 'pkcs11:object=k?pin-value=1&pin-source=file:/p', 'PKCS#11 URI: has both pin-value and pin-source'],
    ['module-path with module-name', 'pkcs11:object=k?module-path=/m.so&module-name=m', 'PKCS#11 URI: has both module-path and module-name'],
  ];
  for (const [what, uri, detail] of refusals) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parsePkcs11Uri(uri), (err: unknown) => err instanceof CaError && err.kind === 'serverInternal' && err.detail === detail);
    });
  }

  it('never quotes the query: a PIN typed wrongly stays out of the message', () => {
    for (const uri of ['pkcs11:object=k?pin-value=47 11-secret', 'pkcs11:object=k?4711-secret', 'pkcs11:object=k?pin-value=%zz4711-secret']) {
      assert.throws(() => parsePkcs11Uri(uri), (err: unknown) => err instanceof CaError && !err.message.includes('4711') && /PKCS#11 URI: /.test(err.detail));
    }
  });
});
