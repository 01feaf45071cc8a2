import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { issuerFor, type EmulatorContext } from './context.ts';
import { CONSUMER_TENANT_ID } from './model.ts';

/**
 * Ways to spoil the next ID token the emulator mints, so a relying party's
 * validation can be tested against each mistake an attacker or a broken
 * identity provider could make (the OpenID RP conformance cases).
 */
export const ID_TOKEN_TAMPERS = [
  'bad-signature',
  'alg-none',
  'hs256',
  'wrong-iss',
  'iss-other-tenant',
  'non-guid-tid',
  'missing-tid',
  'wrong-aud',
  'missing-aud',
  'missing-iat',
  'expired',
  'future-nbf',
  'missing-sub',
  'missing-oid',
  'wrong-nonce',
  'unknown-key',
  'key-for-other-tenant',
  'personal-account',
] as const;

export type IdTokenTamper = (typeof ID_TOKEN_TAMPERS)[number];

const queues = new WeakMap<EmulatorContext, IdTokenTamper[]>();

/** The next ID token minted by this emulator gets `tamper` applied (queued, one per token). */
export function queueIdTokenTamper(ctx: EmulatorContext, tamper: IdTokenTamper): void {
  const queue = queues.get(ctx) ?? [];
  queue.push(tamper);
  queues.set(ctx, queue);
}

export function pendingIdTokenTampers(ctx: EmulatorContext): IdTokenTamper[] {
  return [...(queues.get(ctx) ?? [])];
}

/** Signs ID token claims, applying the next queued tamper if there is one. */
export async function signIdToken(ctx: EmulatorContext, claims: Record<string, unknown>): Promise<string> {
  const tamper = queues.get(ctx)?.shift();
  if (!tamper) return ctx.keyring.sign(claims);
  const c = { ...claims };
  const now = ctx.clock.nowSeconds();
  const otherTenant = randomUUID();
  switch (tamper) {
    case 'bad-signature': {
      const token = await ctx.keyring.sign(c);
      const [header, payload, signature] = token.split('.') as [string, string, string];
      const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
      return `${header}.${payload}.${flipped}`;
    }
    case 'alg-none':
      return `${b64url({ typ: 'JWT', alg: 'none' })}.${b64url(c)}.`;
    case 'hs256': {
      // The classic key-confusion attack: HMAC keyed with the public key the verifier holds.
      const jwk = ctx.keyring.jwks(issuerFor(ctx)).keys[0]!;
      const signingInput = `${b64url({ typ: 'JWT', alg: 'HS256', kid: jwk.kid })}.${b64url(c)}`;
      return `${signingInput}.${createHmac('sha256', jwk.n).update(signingInput).digest('base64url')}`;
    }
    case 'wrong-iss':
      c.iss = `https://login.example.invalid/${String(c.tid)}/v2.0`;
      break;
    case 'iss-other-tenant':
      c.iss = issuerFor(ctx, otherTenant);
      break;
    case 'non-guid-tid':
      c.tid = 'contoso.example';
      c.iss = issuerFor(ctx, 'contoso.example');
      break;
    case 'missing-tid':
      delete c.tid;
      break;
    case 'wrong-aud':
      c.aud = randomUUID();
      break;
    case 'missing-aud':
      delete c.aud;
      break;
    case 'missing-iat':
      delete c.iat;
      break;
    case 'expired':
      c.iat = now - 7200;
      c.nbf = now - 7200;
      c.exp = now - 3600;
      break;
    case 'future-nbf':
      c.nbf = now + 3600;
      c.exp = now + 7200;
      break;
    case 'missing-sub':
      delete c.sub;
      break;
    case 'missing-oid':
      delete c.oid;
      break;
    case 'wrong-nonce':
      c.nonce = 'not-the-nonce-of-this-sign-in';
      break;
    case 'unknown-key': {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return new SignJWT(c).setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: `unpublished-${randomUUID()}` }).sign(privateKey);
    }
    case 'key-for-other-tenant': {
      const kid = await ctx.keyring.addTenantKey(otherTenant);
      return ctx.keyring.sign(c, {}, kid);
    }
    case 'personal-account':
      c.tid = CONSUMER_TENANT_ID;
      c.iss = issuerFor(ctx, CONSUMER_TENANT_ID);
      break;
  }
  return ctx.keyring.sign(c);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
