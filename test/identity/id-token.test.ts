import assert from 'node:assert/strict';
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
