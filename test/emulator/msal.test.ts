import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfidentialClientApplication, CryptoProvider, type Configuration } from '@azure/msal-node';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload, type JSONWebKeySet } from 'jose';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, consent, paramsOf, registerClientCertificate, type Org } from '../helpers/fixtures.ts';
import { caTrustingNetworkClient } from '../helpers/msal.ts';
import { PagesClient } from '../helpers/pages.ts';

const GRAPH_DEFAULT = ['https://graph.microsoft.com/.default'];
const REDIRECT_URI = 'http://localhost:3000/auth/callback';

describe('MSAL Node and jose against the emulator', () => {
  let emulator: TestEmulator;
  let contoso: Org;
  let fabrikam: Org;
  before(async () => {
    emulator = await startTestEmulator();
    contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
    fabrikam = addOrg(emulator.ctx, 'Fabrikam', 'fabrikam.com');
    consent(emulator.ctx, contoso);
    consent(emulator.ctx, fabrikam);
  });
  after(async () => {
    await emulator.close();
  });

  const msalConfig = (auth: Partial<Configuration['auth']>): Configuration => ({
    auth: {
      clientId: emulator.demoApp.clientId,
      authority: `${emulator.urls.authority}/organizations`,
      knownAuthorities: [new URL(emulator.urls.authority).host],
      ...auth,
    },
    system: { networkClient: caTrustingNetworkClient(emulator.caCertPem) },
  });

  const jwks = async (): Promise<ReturnType<typeof createLocalJWKSet>> => {
    const res = await emulator.fetch(`${emulator.urls.authority}/common/discovery/v2.0/keys`);
    return createLocalJWKSet((await res.json()) as JSONWebKeySet);
  };

  /** Verifies a Graph access token the way Graph would: signature by a published key, audience, v1 issuer. */
  const verifyAccessToken = async (token: string, tid: string): Promise<JWTPayload> => {
    const { payload } = await jwtVerify(token, await jwks(), {
      algorithms: ['RS256'],
      audience: 'https://graph.microsoft.com',
      issuer: `https://sts.windows.net/${tid}/`,
    });
    return payload;
  };

  /** The multi-tenant ID token rule: template issuer with `tid` substituted, for the token and for the key. */
  const verifyIdToken = async (token: string, nonce: string): Promise<JWTPayload> => {
    const res = await emulator.fetch(`${emulator.urls.authority}/organizations/discovery/v2.0/keys`);
    const set = (await res.json()) as { keys: Array<{ kid: string; issuer: string }> };
    const { payload } = await jwtVerify(token, createLocalJWKSet(set as unknown as JSONWebKeySet), { algorithms: ['RS256'], audience: emulator.demoApp.clientId });
    const tid = payload.tid as string;
    assert.match(tid, /^[0-9a-f-]{36}$/);
    const template = `${emulator.urls.authority}/{tenantid}/v2.0`;
    assert.equal(payload.iss, template.replace('{tenantid}', tid));
    const key = set.keys.find((k) => k.kid === decodeProtectedHeader(token).kid);
    assert.ok(key, 'the signing key is published');
    assert.equal(key.issuer.replace('{tenantid}', tid), payload.iss);
    assert.equal(payload.nonce, nonce);
    return payload;
  };

  test('client credentials with a secret: one client, two tenants by per-request authority', async () => {
    const cca = new ConfidentialClientApplication(msalConfig({ clientSecret: emulator.demoApp.clientSecret }));
    for (const org of [contoso, fabrikam]) {
      const result = await cca.acquireTokenByClientCredential({ scopes: GRAPH_DEFAULT, authority: `${emulator.urls.authority}/${org.tenant.id}` });
      assert.ok(result?.accessToken);
      const claims = await verifyAccessToken(result.accessToken, org.tenant.id);
      assert.equal(claims.tid, org.tenant.id);
      assert.deepEqual(claims.roles, ['User.Read.All', 'GroupMember.Read.All']);
      assert.equal(claims.appidacr, '1');
      assert.equal(claims.idtyp, 'app');
      assert.equal(claims.appid, emulator.demoApp.clientId);
      assert.equal(claims.ver, '1.0');
      assert.equal(claims.oid, org.tenant.servicePrincipals.get(emulator.demoApp.clientId)!.id);
      assert.equal(claims.sub, claims.oid);
    }
    // The second call for a tenant is served from MSAL's per-tenant cache.
    const again = await cca.acquireTokenByClientCredential({ scopes: GRAPH_DEFAULT, authority: `${emulator.urls.authority}/${contoso.tenant.id}` });
    assert.equal(again?.fromCache, true);
    assert.equal((await verifyAccessToken(again!.accessToken, contoso.tenant.id)).tid, contoso.tenant.id);
  });

  test('client credentials with a certificate (SHA-256 thumbprint, PS256): two tenants, appidacr 2', async () => {
    const cert = await registerClientCertificate(emulator.ctx);
    const cca = new ConfidentialClientApplication(
      msalConfig({ clientCertificate: { thumbprintSha256: cert.sha256Hex, privateKey: cert.keyPem, x5c: cert.certPem } }),
    );
    for (const org of [contoso, fabrikam]) {
      const result = await cca.acquireTokenByClientCredential({ scopes: GRAPH_DEFAULT, authority: `${emulator.urls.authority}/${org.tenant.id}` });
      const claims = await verifyAccessToken(result!.accessToken, org.tenant.id);
      assert.equal(claims.tid, org.tenant.id);
      assert.equal(claims.appidacr, '2');
      assert.deepEqual(claims.roles, ['User.Read.All', 'GroupMember.Read.All']);
    }
  });

  test('client credentials with a certificate (older SHA-1 thumbprint, x5t, RS256)', async () => {
    const cert = await registerClientCertificate(emulator.ctx);
    const cca = new ConfidentialClientApplication(msalConfig({ clientCertificate: { thumbprint: cert.sha1Hex, privateKey: cert.keyPem } }));
    for (const org of [fabrikam, contoso]) {
      const result = await cca.acquireTokenByClientCredential({ scopes: GRAPH_DEFAULT, authority: `${emulator.urls.authority}/${org.tenant.id}` });
      const claims = await verifyAccessToken(result!.accessToken, org.tenant.id);
      assert.equal(claims.tid, org.tenant.id);
      assert.equal(claims.appidacr, '2');
    }
  });

  test('authorization code with PKCE through the sign-in page, then refresh; ID tokens pass the multi-tenant rule', async () => {
    const cca = new ConfidentialClientApplication(msalConfig({ clientSecret: emulator.demoApp.clientSecret }));
    const crypto = new CryptoProvider();
    const pkce = await crypto.generatePkceCodes();
    const nonce = crypto.createNewGuid();
    const state = crypto.createNewGuid();
    const url = await cca.getAuthCodeUrl({
      scopes: ['User.Read', 'email'],
      redirectUri: REDIRECT_URI,
      codeChallenge: pkce.challenge,
      codeChallengeMethod: 'S256',
      nonce,
      state,
    });
    assert.ok(url.startsWith(`${emulator.urls.pages}/organizations/oauth2/v2.0/authorize?`), url);

    const browser = new PagesClient(emulator);
    const page = await browser.get(url);
    assert.equal(page.status, 200);
    assert.match(page.html, /Roster \(demo\)/);
    const landed = await browser.submit(page, { username: contoso.member.props.userPrincipalName, password: 'pw' });
    assert.equal(landed.status, 302);
    assert.ok(landed.location?.startsWith(`${REDIRECT_URI}?`));
    const params = paramsOf(landed.location);
    assert.equal(params.state, state);
    assert.ok(params.code);

    const result = await cca.acquireTokenByCode({ code: params.code!, redirectUri: REDIRECT_URI, scopes: ['User.Read', 'email'], codeVerifier: pkce.verifier, nonce, state }, { code: params.code!, state: params.state! });
    assert.ok(result);
    assert.equal(result.account?.homeAccountId, `${contoso.member.props.id}.${contoso.tenant.id}`);
    assert.equal(result.account?.tenantId, contoso.tenant.id);
    const idClaims = await verifyIdToken(result.idToken, nonce);
    assert.equal(idClaims.tid, contoso.tenant.id);
    assert.equal(idClaims.oid, contoso.member.props.id);
    assert.equal(idClaims.preferred_username, 'user@contoso.com');
    assert.equal(idClaims.name, 'Contoso User');
    assert.equal(idClaims.email, 'user@contoso.com');
    assert.equal(idClaims.ver, '2.0');
    assert.match(String(idClaims.sub), /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(idClaims.sub, idClaims.oid);
    assert.ok(idClaims.sid && idClaims.login_hint);
    assert.equal(idClaims.idp, undefined);
    const exp = idClaims.exp! - idClaims.iat!;
    assert.equal(exp, 3600);
    const access = await verifyAccessToken(result.accessToken, contoso.tenant.id);
    assert.equal(access.idtyp, 'user');
    assert.equal(access.oid, contoso.member.props.id);
    assert.equal(access.upn, 'user@contoso.com');
    assert.match(String(access.scp), /\bUser\.Read\b/);
    assert.equal(access.appidacr, '1');

    // Refresh through MSAL's cache (the access token is still fresh, so force it).
    const silent = await cca.acquireTokenSilent({ account: result.account!, scopes: ['User.Read'], forceRefresh: true });
    assert.ok(silent);
    assert.equal(silent.fromCache, false);
    assert.notEqual(silent.accessToken, result.accessToken);
    assert.equal((await verifyAccessToken(silent.accessToken, contoso.tenant.id)).oid, contoso.member.props.id);

    // And with the refresh token itself (the ADAL-migration API).
    const cache = JSON.parse(cca.getTokenCache().serialize()) as { RefreshToken: Record<string, { secret: string }> };
    const refreshToken = Object.values(cache.RefreshToken)[0]!.secret;
    const byRt = await cca.acquireTokenByRefreshToken({ refreshToken, scopes: ['User.Read'] });
    assert.equal((await verifyAccessToken(byRt!.accessToken, contoso.tenant.id)).tid, contoso.tenant.id);
  });

  test('after key rotation new tokens carry the new kid, present in the refreshed JWKS', async () => {
    const before = (await (await emulator.fetch(`${emulator.urls.authority}/common/discovery/v2.0/keys`)).json()) as { keys: Array<{ kid: string }> };
    const kid = await emulator.ctx.keyring.rotate();
    assert.ok(!before.keys.some((k) => k.kid === kid));
    const cca = new ConfidentialClientApplication(msalConfig({ clientSecret: emulator.demoApp.clientSecret }));
    const result = await cca.acquireTokenByClientCredential({ scopes: GRAPH_DEFAULT, authority: `${emulator.urls.authority}/${contoso.tenant.id}` });
    assert.equal(decodeProtectedHeader(result!.accessToken).kid, kid);
    // A fresh JWKS fetch knows the new key, so verification succeeds.
    assert.equal((await verifyAccessToken(result!.accessToken, contoso.tenant.id)).tid, contoso.tenant.id);
  });
});
