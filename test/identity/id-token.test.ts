import assert from 'node:assert/strict';
import { createHmac, createPrivateKey, generateKeyPairSync, sign, constants, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { issuerFor } from '../../src/emulator/context.ts';
import { after, before, describe, it } from 'node:test';
import { queueIdTokenTamper, type IdTokenTamper } from '../../src/emulator/tamper.ts';
import type { OutboundHttp } from '../../src/identity/http.ts';
import { IdTokenRejectedError, IdTokenValidator, PERSONAL_ACCOUNT_TENANT_ID } from '../../src/identity/id-token.ts';
import type { AuthorityMetadata } from '../../src/identity/metadata.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { connectToEmulator, type EmulatorConnection } from '../helpers/entra.ts';
import { addOrg, consent, type Org } from '../helpers/fixtures.ts';
import { PagesClient, signInForCode } from '../helpers/pages.ts';

const REDIRECT_URI = 'http://localhost:3000/auth/callback';
const NONCE = 'nonce-of-this-sign-in';

let emulator: TestEmulator;
let connection: EmulatorConnection;
let http: OutboundHttp;
let metadata: AuthorityMetadata;
let contoso: Org;

before(async () => {
  emulator = await startTestEmulator();
  connection = await connectToEmulator(emulator);
  http = connection.http;
  metadata = connection.metadata;
  contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
  consent(emulator.ctx, contoso);
});

after(async () => {
  await http.close();
  await emulator.close();
});

/** Signs the member (or `username`) in through the emulator's pages and redeems the code at the token endpoint. */
async function mintIdToken(tamper?: IdTokenTamper, username = 'user@contoso.com'): Promise<string> {
  if (tamper) queueIdTokenTamper(emulator.ctx, tamper);
  const { code, verifier } = await signInForCode(emulator, { username, nonce: NONCE, scope: 'openid profile email' });
  const res = await emulator.fetch(`${emulator.urls.authority}/organizations/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: emulator.demoApp.clientId,
      client_secret: emulator.demoApp.clientSecret,
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT_URI,
      scope: 'openid profile email',
    }).toString(),
  });
  const body = (await res.json()) as { id_token?: string };
  assert.equal(res.status, 200);
  assert.ok(body.id_token);
  return body.id_token;
}

function validator(now?: () => number): IdTokenValidator {
  return new IdTokenValidator(http, metadata, emulator.demoApp.clientId, now);
}

describe('rule 4: ID token validation', () => {
  it('accepts a good token and reads the identity from tid and oid', async () => {
    const identity = await validator().validate(await mintIdToken(), NONCE);
    assert.equal(identity.tenantId, contoso.tenant.id);
    assert.equal(identity.objectId, contoso.member.props.id);
    assert.equal(identity.preferredUsername, 'user@contoso.com');
    assert.ok(identity.loginHint);
  });

  const rejected: [IdTokenTamper, RegExp][] = [
    ['bad-signature', /signature verification failed/],
    ['alg-none', /alg|JOSEAlgNotAllowed|ERR_JOSE_ALG_NOT_ALLOWED/],
    ['hs256', /alg|ERR_JOSE_ALG_NOT_ALLOWED/],
    ['wrong-iss', /iss .* is not the issuer of tenant/],
    ['iss-other-tenant', /iss .* is not the issuer of tenant/],
    ['non-guid-tid', /tid is not a GUID/],
    ['missing-tid', /"tid" claim|tid/],
    ['wrong-aud', /aud/],
    ['missing-aud', /aud/],
    ['missing-iat', /"iat" claim/],
    ['expired', /exp|expired/],
    ['future-nbf', /nbf/],
    ['missing-sub', /"sub" claim/],
    ['missing-oid', /oid is missing/],
    ['wrong-nonce', /nonce does not match/],
    ['unknown-key', /no applicable key|JWKSNoMatchingKey|ERR_JWKS_NO_MATCHING_KEY/],
    ['key-for-other-tenant', /signing key is for issuer/],
  ];
  for (const [tamper, reason] of rejected) {
    it(`rejects a token with ${tamper}`, async () => {
      const token = await mintIdToken(tamper);
      await assert.rejects(validator().validate(token, NONCE), (err: unknown) => {
        assert.ok(err instanceof IdTokenRejectedError, String(err));
        assert.match(err.reason, reason);
        return true;
      });
    });
  }

  it('the control API queues a spoiled token too, and refuses an unknown kind', async () => {
    await emulator.control('POST', '/id-tokens/tamper', { kind: 'wrong-aud' });
    await assert.rejects(validator().validate(await mintIdToken(), NONCE), (err: unknown) => err instanceof IdTokenRejectedError && /aud/.test(err.reason));
    await assert.rejects(emulator.control('POST', '/id-tokens/tamper', { kind: 'slightly-off' }), /400/);
    const identity = await validator().validate(await mintIdToken(), NONCE);
    assert.equal(identity.tenantId, contoso.tenant.id, 'one spoiled token per request');
  });

  it('reads wids as the directory roles of the sign-in: Global Administrator for an admin, none for a member', async () => {
    const admin = await validator().validate(await mintIdToken(undefined, 'admin@contoso.com'), NONCE);
    assert.ok(admin.directoryRoles.includes('62e90394-69f5-4237-9190-012177145e10'), String(admin.directoryRoles));
    const member = await validator().validate(await mintIdToken(), NONCE);
    assert.deepEqual(member.directoryRoles, []);
  });

  it('rejects a token whose wids is not a list of role template ids', async () => {
    const good = await mintIdToken(undefined, 'admin@contoso.com');
    const claims = JSON.parse(Buffer.from(good.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    for (const wids of ['62e90394-69f5-4237-9190-012177145e10', ['Global Administrator'], [42], {}]) {
      const token = await emulator.ctx.keyring.sign({ ...claims, wids });
      await assert.rejects(validator().validate(token, NONCE), (err: unknown) => err instanceof IdTokenRejectedError && /wids/.test(err.reason), JSON.stringify(wids));
    }
  });

  it('a personal account is a valid token whose tid the registry must refuse', async () => {
    const identity = await validator().validate(await mintIdToken('personal-account'), NONCE);
    assert.equal(identity.tenantId, PERSONAL_ACCOUNT_TENANT_ID);
  });

  it('accepts a token signed by a key published after the key set was cached (one refetch)', async () => {
    const v = validator();
    await v.validate(await mintIdToken(), NONCE);
    await emulator.ctx.keyring.rotate({ dropPrevious: true });
    const fetchesBefore = keyFetches();
    const identity = await v.validate(await mintIdToken(), NONCE);
    assert.equal(identity.objectId, contoso.member.props.id);
    assert.equal(keyFetches() - fetchesBefore, 1);
  });

  it('refuses a dropped key once a refetch has dropped it, even when it verified tokens just before and during that refetch', async () => {
    const v = validator();
    const byOldKey = [await mintIdToken(), await mintIdToken()];
    await v.validate(byOldKey[0]!, NONCE);
    await emulator.ctx.keyring.rotate({ dropPrevious: true });
    const byNewKey = await mintIdToken();
    // The old key's token is looked up while the refetch for the new key is under way: the set still answers from before.
    await Promise.allSettled([v.validate(byNewKey, NONCE), v.validate(byOldKey[1]!, NONCE)]);
    for (const token of byOldKey) {
      await assert.rejects(v.validate(token, NONCE), (err: unknown) => err instanceof IdTokenRejectedError && /no applicable key|ERR_JWKS_NO_MATCHING_KEY/.test(err.reason));
    }
    assert.equal((await v.validate(byNewKey, NONCE)).objectId, contoso.member.props.id);
  });

  it('refuses a dropped key once a refetch has dropped it, when its own lookup began just before that refetch', async () => {
    const v = validator();
    const tenantKid = await emulator.ctx.keyring.addTenantKey(contoso.tenant.id);
    const byOldKey = [await mintIdToken(), await mintIdToken()];
    // Another key's lookup, so the old key's next one asks the key set again.
    await v.validate(await emulator.ctx.keyring.sign({ tid: contoso.tenant.id }, {}, tenantKid), NONCE).catch(() => undefined);
    await emulator.ctx.keyring.rotate({ dropPrevious: true });
    const byNewKey = await mintIdToken();
    await Promise.allSettled([v.validate(byOldKey[0]!, NONCE), v.validate(byNewKey, NONCE)]);
    for (const token of byOldKey) {
      await assert.rejects(v.validate(token, NONCE), (err: unknown) => err instanceof IdTokenRejectedError && /no applicable key|ERR_JWKS_NO_MATCHING_KEY/.test(err.reason));
    }
  });

  it('unknown kids do not make it refetch keys more than once per interval', async () => {
    let now = Date.now();
    const v = validator(() => now);
    await v.validate(await mintIdToken(), NONCE);
    const forged = await Promise.all([mintIdToken('unknown-key'), mintIdToken('unknown-key'), mintIdToken('unknown-key')]);
    const before = keyFetches();
    for (const token of forged) await assert.rejects(v.validate(token, NONCE), IdTokenRejectedError);
    assert.equal(keyFetches() - before, 1, 'one forced refetch for three forged kids');
    now += 6 * 60_000;
    await assert.rejects(v.validate(forged[0]!, NONCE), IdTokenRejectedError);
    assert.equal(keyFetches() - before, 2, 'another one once the interval has passed');
  });

  it('finds the signing key\'s issuer when the key set pads its modulus with a zero octet, and not from another entry with its kid', async () => {
    const { keyring } = emulator.ctx;
    const published = keyring.jwks.bind(keyring);
    const otherTenantIssuer = issuerFor(emulator.ctx, '11111111-2222-3333-4444-555555555555');
    keyring.jwks = (issuerTemplate: string) => {
      const { keys } = published(issuerTemplate);
      const padded = keys.map((k) => ({ ...k, n: Buffer.concat([Buffer.alloc(1), Buffer.from(k.n, 'base64url')]).toString('base64url') }));
      // An encryption entry under the same kid with other material and another issuer, listed first.
      const impostors = keys.map((k) => ({ ...k, use: 'enc' as const, n: k.n.split('').reverse().join(''), issuer: otherTenantIssuer }));
      return { keys: [...impostors, ...padded] };
    };
    try {
      const identity = await validator().validate(await mintIdToken(), NONCE);
      assert.equal(identity.tenantId, contoso.tenant.id);
    } finally {
      keyring.jwks = published;
    }
  });

  it('ignores decoy keys in the key set', async () => {
    emulator.ctx.keyring.withDecoys = true;
    try {
      const identity = await validator().validate(await mintIdToken(), NONCE);
      assert.equal(identity.tenantId, contoso.tenant.id);
    } finally {
      emulator.ctx.keyring.withDecoys = false;
    }
  });
});

describe('rule 4: forged and malformed ID tokens', () => {
  const b64 = (text: string | Buffer) => Buffer.from(text).toString('base64url');
  let signingKey: KeyObject;
  let kid: string;
  let claims: Record<string, unknown>;
  let nowMs: number;
  let v: IdTokenValidator;

  before(() => {
    // Tokens here are built byte by byte and signed with the emulator's current (published) key.
    const stored = emulator.ctx.keyring.toStored().findLast((k) => !k.tenantId)!;
    signingKey = createPrivateKey(stored.keyPem);
    kid = emulator.ctx.keyring.currentKid;
    const nowSeconds = emulator.ctx.clock.nowSeconds();
    nowMs = nowSeconds * 1000;
    claims = {
      aud: emulator.demoApp.clientId,
      iss: issuerFor(emulator.ctx, contoso.tenant.id),
      iat: nowSeconds,
      nbf: nowSeconds,
      exp: nowSeconds + 3600,
      tid: contoso.tenant.id,
      oid: contoso.member.props.id,
      sub: 'forged-sub',
      nonce: NONCE,
      ver: '2.0',
    };
    v = validator(() => nowMs);
  });

  /** A compact JWS from literal header and payload texts (objects are JSON-encoded), RS256-signed with the published key. */
  function forge(header: object | string, payload: object | string, signer: (input: string) => Buffer = rs256): string {
    const text = (part: object | string) => (typeof part === 'string' ? part : JSON.stringify(part));
    const input = `${b64(text(header))}.${b64(text(payload))}`;
    return `${input}.${b64(signer(input))}`;
  }
  const rs256 = (input: string) => sign('sha256', Buffer.from(input), signingKey);
  const header = (extra: Record<string, unknown> = {}) => ({ typ: 'JWT', alg: 'RS256', kid, ...extra });

  /** jose's `jwtVerify` over the same key set, with the options the validator used to pass it. */
  async function joseAccepts(token: string): Promise<Record<string, unknown> | null> {
    const keys = createLocalJWKSet(emulator.ctx.keyring.jwks(issuerFor(emulator.ctx)) as never);
    try {
      const { payload } = await jwtVerify(token, keys, {
        algorithms: ['RS256'],
        audience: emulator.demoApp.clientId,
        requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub', 'tid'],
        clockTolerance: 120,
        currentDate: new Date(nowMs),
      });
      return payload as Record<string, unknown>;
    } catch {
      return null;
    }
  }

  async function assertRejected(token: unknown, reason: RegExp): Promise<void> {
    await assert.rejects(v.validate(token as string, NONCE), (err: unknown) => {
      assert.ok(err instanceof IdTokenRejectedError, String(err));
      assert.match(err.reason, reason);
      return true;
    });
  }

  it('accepts a token forged with the published key and a normal header (so each rejection below is about its one change)', async () => {
    const token = forge(header(), claims);
    const identity = await v.validate(token, NONCE);
    assert.equal(identity.objectId, contoso.member.props.id);
    assert.deepEqual(identity.claims, await joseAccepts(token));
  });

  it('rejects a wrong, truncated, empty or padded signature', async () => {
    const good = forge(header(), claims);
    const [h, p, sig] = good.split('.') as [string, string, string];
    const other = forge(header(), { ...claims, oid: 'someone-else' }).split('.')[2]!;
    await assertRejected(`${h}.${p}.${other}`, /signature verification failed/);
    await assertRejected(`${h}.${p}.${sig.slice(0, -4)}`, /signature verification failed/);
    await assertRejected(`${h}.${p}.`, /signature verification failed/);
    await assertRejected(`${h}.${p}.${sig}=`, /signature is not base64url/);
    await assertRejected(`${h}.${p}.${sig.slice(0, 10)} ${sig.slice(10)}`, /signature is not base64url/);
  });

  it('refuses every alg but RS256, even with a valid signature by the published key', async () => {
    const pss = (input: string) => sign('sha256', Buffer.from(input), { key: signingKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    const jwk = emulator.ctx.keyring.jwks(issuerFor(emulator.ctx)).keys.find((k) => k.kid === kid)!;
    const hmacWithPublicKey = (input: string) => createHmac('sha256', jwk.n).update(input).digest();
    const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const es256 = (input: string) => sign('sha256', Buffer.from(input), { key: ecKey, dsaEncoding: 'ieee-p1363' });
    await assertRejected(forge(header({ alg: 'PS256' }), claims, pss), /alg "PS256" is not allowed/);
    await assertRejected(forge(header({ alg: 'HS256' }), claims, hmacWithPublicKey), /alg "HS256" is not allowed/);
    await assertRejected(forge(header({ alg: 'ES256' }), claims, es256), /alg "ES256" is not allowed/);
    await assertRejected(forge(header({ alg: 'none' }), claims, () => Buffer.alloc(0)), /alg "none" is not allowed/);
    await assertRejected(forge(header({ alg: 'rs256' }), claims), /alg "rs256" is not allowed/);
    await assertRejected(forge(header({ alg: ['RS256'] }), claims), /alg \["RS256"\] is not allowed/);
    await assertRejected(forge({ typ: 'JWT', kid }, claims), /alg undefined is not allowed/);
  });

  it('requires a kid naming a published signing key', async () => {
    await assertRejected(forge({ typ: 'JWT', alg: 'RS256' }, claims), /names no key/);
    await assertRejected(forge(header({ kid: '' }), claims), /names no key/);
    await assertRejected(forge(header({ kid: 42 }), claims), /names no key/);
    await assertRejected(forge(header({ kid: 'not-published' }), claims), /no applicable key|JWKSNoMatchingKey|ERR_JWKS_NO_MATCHING_KEY/);
    emulator.ctx.keyring.withDecoys = true;
    try {
      // Same key material published for encryption: not a signing key.
      await assertRejected(forge(header({ kid: `${kid}-enc` }), claims), /no applicable key|ERR_JWKS_NO_MATCHING_KEY/);
    } finally {
      emulator.ctx.keyring.withDecoys = false;
    }
  });

  it('refuses JWS extensions: crit, and an unencoded (b64=false) payload', async () => {
    await assertRejected(forge(header({ crit: ['exp'], exp: 1 }), claims), /extensions/);
    await assertRejected(forge(header({ crit: [] }), claims), /extensions/);
    const unencoded = header({ crit: ['b64'], b64: false });
    const encodedHeader = b64(JSON.stringify(unencoded));
    const payloadText = JSON.stringify(claims);
    const signature = b64(rs256(`${encodedHeader}.${payloadText}`));
    await assertRejected(`${encodedHeader}.${b64(payloadText)}.${signature}`, /extensions/);
    await assertRejected(forge(header({ b64: true }), claims), /extensions/);
  });

  it('rejects parts that are not strict base64url, and payload text outside ASCII that would alias signed bytes', async () => {
    const [h, p, sig] = forge(header(), claims).split('.') as [string, string, string];
    await assertRejected(`${h}.${p}`, /three dot-separated parts/);
    await assertRejected(`${h}.${p}.${sig}.${sig}`, /three dot-separated parts/);
    await assertRejected(42, /three dot-separated parts/);
    await assertRejected(`${h}=.${p}.${sig}`, /header is not base64url/);
    await assertRejected(`${h}.${p.replaceAll('-', '+').replaceAll('_', '/')}x.${sig}`, /payload is not base64url/);
    // U+0141 and U+0041 share their low byte: a Latin-1 signing input would make both tokens one.
    const at = p.indexOf('A');
    assert.ok(at >= 0);
    await assertRejected(`${h}.${p.slice(0, at)}\u0141${p.slice(at + 1)}.${sig}`, /payload is not base64url/);
  });

  it('rejects a header or payload that is not a JSON object in UTF-8', async () => {
    await assertRejected(forge('["RS256"]', claims), /header is not a JSON object/);
    await assertRejected(forge('null', claims), /header is not a JSON object/);
    await assertRejected(forge('{"alg":"RS256",', claims), /header is not JSON/);
    await assertRejected(forge(header(), '[1,2]'), /payload is not a JSON object/);
    await assertRejected(forge(header(), '"tid"'), /payload is not a JSON object/);
    const invalidUtf8 = Buffer.concat([Buffer.from(JSON.stringify({ ...claims, name: 'x' }).slice(0, -2)), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const input = `${b64(JSON.stringify(header()))}.${b64(invalidUtf8)}`;
    await assertRejected(`${input}.${b64(rs256(input))}`, /payload is not JSON/);
  });

  it('reads duplicate members as the last one, exactly as jose did', async () => {
    const otherTenant = '11111111-2222-3333-4444-555555555555';
    const payloadText = JSON.stringify(claims).replace('{', `{"tid":"${otherTenant}","iss":"${issuerFor(emulator.ctx, otherTenant)}",`);
    const token = forge(header(), payloadText);
    const identity = await v.validate(token, NONCE);
    assert.equal(identity.tenantId, contoso.tenant.id);
    assert.equal((await joseAccepts(token))?.tid, contoso.tenant.id);
    const reversed = forge(header(), JSON.stringify(claims).replace(/}$/, `,"tid":"${otherTenant}"}`));
    await assertRejected(reversed, /iss .* is not the issuer of tenant 11111111/);
    // A header whose alg is stated twice is read the same way: the last statement decides.
    await assertRejected(forge(`{"typ":"JWT","alg":"RS256","kid":"${kid}","alg":"none"}`, claims), /alg "none" is not allowed/);
  });

  it('applies audience, time and type rules on the registered claims, with 120 s of clock skew', async () => {
    const nowSeconds = nowMs / 1000;
    const accepted = async (extra: Record<string, unknown>) => {
      const token = forge(header(), { ...claims, ...extra });
      await v.validate(token, NONCE);
      assert.ok(await joseAccepts(token), 'jose accepts it too');
    };
    await accepted({ aud: ['https://other.example', emulator.demoApp.clientId] });
    await accepted({ exp: nowSeconds - 119 });
    await accepted({ nbf: nowSeconds + 120 });
    await assertRejected(forge(header(), { ...claims, aud: ['https://other.example'] }), /"aud" claim/);
    await assertRejected(forge(header(), { ...claims, aud: emulator.demoApp.clientId.toUpperCase() }), /"aud" claim/);
    await assertRejected(forge(header(), { ...claims, exp: nowSeconds - 120 }), /"exp" claim timestamp check failed/);
    await assertRejected(forge(header(), { ...claims, nbf: nowSeconds + 121 }), /"nbf" claim timestamp check failed/);
    await assertRejected(forge(header(), { ...claims, exp: String(nowSeconds + 3600) }), /"exp" claim must be a number/);
    await assertRejected(forge(header(), { ...claims, iat: null }), /"iat" claim must be a number/);
    await assertRejected(forge(header(), { ...claims, nbf: '0' }), /"nbf" claim must be a number/);
    await assertRejected(forge(header(), JSON.stringify(claims).replace(/"exp":\d+/, '"exp":1e999')), /"exp" claim must be a number/);
    const { exp: _exp, ...withoutExp } = claims;
    await assertRejected(forge(header(), withoutExp), /missing required "exp" claim/);
  });

  it('never accepts a token jose would have refused', async () => {
    const tokens = [
      forge(header(), claims),
      forge(header({ x5t: 'anything' }), claims),
      forge(header(), { ...claims, aud: [emulator.demoApp.clientId] }),
      forge(header(), { ...claims, exp: nowMs / 1000 - 121 }),
      forge(header(), { ...claims, iss: 42 }),
      forge(header(), { ...claims, sub: undefined }),
      forge({ typ: 'JWT', alg: 'RS256' }, claims),
      forge(header({ crit: ['b64'], b64: true }), claims),
    ];
    for (const token of tokens) {
      const ours = await v.validate(token, NONCE).then(
        (identity) => identity.claims,
        () => null,
      );
      if (ours) assert.deepEqual(ours, await joseAccepts(token), token);
    }
  });
});

describe('rule 1: sign-in with the authorization code flow and PKCE through MSAL', () => {
  it('builds an authorize URL with code, S256 challenge, nonce and state, and redeems the code', async () => {
    const app = connection.app();
    const pkce = await app.newPkcePair();
    const url = new URL(await app.signInUrl({ redirectUri: REDIRECT_URI, state: 'state-1', nonce: NONCE, codeChallenge: pkce.challenge }));
    assert.equal(url.origin, new URL(emulator.urls.pages).origin);
    assert.equal(url.searchParams.get('response_type'), 'code');
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(url.searchParams.get('code_challenge'), pkce.challenge);
    assert.equal(url.searchParams.get('nonce'), NONCE);
    assert.equal(url.searchParams.get('state'), 'state-1');
    assert.equal(url.searchParams.get('response_mode'), 'query');
    assert.equal(url.searchParams.get('scope'), 'openid profile email', 'who the person is, and no offline_access');

    const browser = new PagesClient(emulator);
    const landed = await browser.submit(await browser.get(url.href), { username: 'user@contoso.com', password: 'pw' });
    const code = new URL(landed.location!).searchParams.get('code')!;
    const idToken = await app.redeemCode({ code, redirectUri: REDIRECT_URI, codeVerifier: pkce.verifier, nonce: NONCE });
    const identity = await validator().validate(idToken, NONCE);
    assert.equal(identity.objectId, contoso.member.props.id);
  });
});

function keyFetches(): number {
  return emulator.ctx.requestLog.entries().filter((e) => e.route.endsWith('/discovery/v2.0/keys')).length;
}
