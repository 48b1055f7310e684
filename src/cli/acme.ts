/** `service-ca acme eab`: an external account binding for an ACME client (docs/api.md "ACME"). */
import { callApi, connect, parseOptions, type Command } from './command.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE } from './context.js';

const USAGE = `Usage: service-ca acme eab [--identity ID [--issuer NAME]] [options]

Gets a single-use ACME external account binding (kid and HMAC key) for the token's identity, or,
with an admin token, for the identity named. The ACME account created with it acts as that
identity: it gets only the names that identity's policies grant. Give the two values to the
ACME client: certbot --eab-kid KID --eab-hmac-key KEY, lego --eab --kid KID --hmac KEY.

Options:
  --identity ID       the identity to bind (admin)
  --issuer NAME       with --identity: the configured issuer a policy's "issuers" matches (admin)
${CONNECTION_USAGE}
  --json              JSON output
  --help              this text`;

export const acmeCommand: Command = {
  name: 'acme',
  summary: 'ACME: get an external account binding (acme eab)',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === '--help' || sub === '-h') {
      console.log(USAGE);
      return 0;
    }
    if (sub !== 'eab') {
      console.error(`service-ca: ${sub === undefined ? 'which acme command? (eab)' : `unknown acme command "${sub}"`}\n\n${USAGE}`);
      return 2;
    }
    const v = parseOptions(rest, { ...CONNECTION_OPTIONS, identity: { type: 'string' }, issuer: { type: 'string' }, json: { type: 'boolean', default: false } }, USAGE);
    if (typeof v === 'number') return v;
    if (v.issuer !== undefined && v.identity === undefined) {
      console.error(`service-ca: --issuer goes with --identity\n\n${USAGE}`);
      return 2;
    }
    const c = connect(v, USAGE);
    if (typeof c === 'number') return c;
    const request = { ...(v.identity ? { identity: v.identity } : {}), ...(v.issuer ? { issuer: v.issuer } : {}) };
    return callApi(
      () => c.client.acmeBinding(c.token, request),
      (b) => console.log(v.json ? JSON.stringify(b, null, 2) : `identity  ${b.identity}\nkid       ${b.kid}\nhmacKey   ${b.hmacKey}\nexpires   ${b.expires}\n\nUse it once: certbot --eab-kid ${b.kid} --eab-hmac-key ${b.hmacKey}  (or lego --eab --kid ... --hmac ...)`),
    );
  },
};
