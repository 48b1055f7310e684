/**
 * `service-ca token`: mint a token from the development issuer that `npm start` created, the
 * way a Kubernetes service-account token or an OIDC ID token would arrive in production.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, importJWK, type JWK } from 'jose';
import { parseDuration } from '../duration.js';
import { parseOptions, type Command } from './command.js';

const USAGE = `Usage: service-ca token --sub IDENTITY [options]

Prints a JWT signed by the development token issuer under DATA (default ./data).

Options:
  --sub IDENTITY   the subject, e.g. spiffe://dev.local/ns/default/sa/web
  --data DIR       the development CA's folder (default ./data)
  --ttl DURATION   lifetime, at most the issuer's maxTokenAge (default 10m)
  --san NAME       limit the token to this name (repeatable; the "sans" claim)
  --help           this text`;

export const tokenCommand: Command = {
  name: 'token',
  summary: 'mint a token from the development token issuer',
  async run(argv) {
    const v = parseOptions(
      argv,
      { sub: { type: 'string' }, data: { type: 'string', default: './data' }, ttl: { type: 'string', default: '10m' }, san: { type: 'string', multiple: true } },
      USAGE,
    );
    if (typeof v === 'number') return v;
    if (!v.sub) {
      console.error(`service-ca: --sub is required\n\n${USAGE}`);
      return 2;
    }
    const ttl = parseDuration(v.ttl);
    if (!ttl) {
      console.error('service-ca: --ttl is not a duration');
      return 2;
    }
    const file = join(v.data!, 'dev-issuer.key.json');
    let issuer: { issuer: string; audience: string; key: JWK };
    try {
      issuer = JSON.parse(readFileSync(file, 'utf8')) as typeof issuer;
    } catch {
      console.error(`service-ca: no development token issuer at ${file} (run "npm start" once without a configuration)`);
      return 1;
    }
    const key = await importJWK(issuer.key, 'ES256');
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ ...(v.san?.length ? { sans: v.san } : {}) })
      .setProtectedHeader({ alg: 'ES256', kid: issuer.key.kid!, typ: 'JWT' })
      .setIssuer(issuer.issuer)
      .setAudience(issuer.audience)
      .setSubject(v.sub)
      .setIssuedAt(now)
      .setExpirationTime(now + ttl)
      .setJti(randomUUID())
      .sign(key);
    console.log(token);
    return 0;
  },
};
