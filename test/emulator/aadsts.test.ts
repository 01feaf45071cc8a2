import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { SignJWT, importPKCS8 } from 'jose';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, consent, demoApp, registerClientCertificate, type ClientCert, type Org } from '../helpers/fixtures.ts';
import { signInForCode } from '../helpers/pages.ts';

const GRAPH_DEFAULT = 'https://graph.microsoft.com/.default';
const REDIRECT_URI = 'http://localhost:3000/auth/callback';

/** The token endpoint's AADSTS errors (spec section 6), each produced by the scenario that causes it. */
describe('token endpoint AADSTS errors', () => {
  let emulator: TestEmulator;
  let contoso: Org;
  let fabrikam: Org;
  let cert: ClientCert;

  before(async () => {
    emulator = await startTestEmulator();
    contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
    fabrikam = addOrg(emulator.ctx, 'Fabrikam', 'fabrikam.com');
    consent(emulator.ctx, contoso);
    cert = await registerClientCertificate(emulator.ctx);
  });
  after(async () => {
    await emulator.close();
  });

  const token = async (tenant: string, fields: Record<string, string>, headers: Record<string, string> = {}) => {
    const res = await emulator.fetch(`${emulator.urls.authority}/${tenant}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(fields).toString(),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const appToken = (tenant: string, extra: Record<string, string> = {}) =>
    token(tenant, { grant_type: 'client_credentials', client_id: emulator.demoApp.clientId, client_secret: emulator.demoApp.clientSecret, scope: GRAPH_DEFAULT, ...extra });

  const assertError = (res: { status: number; body: Record<string, unknown> }, status: number, error: string, code: number) => {
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body.error, error);
    assert.deepEqual(res.body.error_codes, [code]);
    assert.match(String(res.body.error_description), new RegExp(`^AADSTS${code}: .+\\r\\nTrace ID: [0-9a-f-]+\\r\\nCorrelation ID: [0-9a-f-]+\\r\\nTimestamp: `));
    assert.ok(res.body.trace_id && res.body.correlation_id && res.body.timestamp);
    assert.equal(res.body.error_uri, `https://login.microsoftonline.com/error?code=${code}`);
  };

  const assertion = async (claims: Record<string, unknown>, header: Record<string, unknown>, keyPem: string, alg = 'PS256') => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ aud: `${emulator.urls.authority}/${contoso.tenant.id}/oauth2/v2.0/token`, iss: emulator.demoApp.clientId, sub: emulator.demoApp.clientId, jti: randomUUID(), nbf: now, exp: now + 600, ...claims })
      .setProtectedHeader({ alg, typ: 'JWT', ...header })
      .sign(await importPKCS8(keyPem, alg));
  };

  test('baseline: a consented tenant answers client credentials (secret in body and HTTP Basic)', async () => {
    const body = await appToken(contoso.tenant.id);
    assert.equal(body.status, 200);
    assert.equal(body.body.token_type, 'Bearer');
    assert.equal(body.body.expires_in, 3599);
    assert.equal(body.body.refresh_token, undefined);
    const basic = Buffer.from(`${encodeURIComponent(emulator.demoApp.clientId)}:${encodeURIComponent(emulator.demoApp.clientSecret)}`).toString('base64');
    const viaBasic = await token('contoso.com', { grant_type: 'client_credentials', scope: GRAPH_DEFAULT }, { authorization: `Basic ${basic}` });
    assert.equal(viaBasic.status, 200);
    const viaAssertion = await token(contoso.tenant.id, {
      grant_type: 'client_credentials',
      client_id: emulator.demoApp.clientId,
      scope: GRAPH_DEFAULT,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion({}, { 'x5t#S256': cert.x5tS256 }, cert.keyPem),
    });
    assert.equal(viaAssertion.status, 200, JSON.stringify(viaAssertion.body));
  });

  test('AADSTS700016: unknown client id', async () => {
    assertError(await appToken(contoso.tenant.id, { client_id: randomUUID() }), 400, 'unauthorized_client', 700016);
  });

  test('AADSTS700016: tenant that never consented', async () => {
    assertError(await appToken(fabrikam.tenant.id), 400, 'unauthorized_client', 700016);
  });

  test('AADSTS700016: consent revoked (service principal deleted); tokens issued before still verify', async () => {
    const org = addOrg(emulator.ctx, 'Revoked', 'revoked.example');
    consent(emulator.ctx, org);
    const ok = await appToken(org.tenant.id);
    assert.equal(ok.status, 200);
    emulator.ctx.directory.revokeConsent(org.tenant, emulator.demoApp.clientId);
    assertError(await appToken(org.tenant.id), 400, 'unauthorized_client', 700016);
    const claims = await emulator.ctx.keyring.verify(String(ok.body.access_token), emulator.ctx.clock.nowSeconds());
    assert.equal(claims.tid, org.tenant.id);
  });

  test('AADSTS7000229: no service principal, newer form', async () => {
    emulator.ctx.directory.missingServicePrincipalError = 7000229;
    try {
      assertError(await appToken(fabrikam.tenant.id), 401, 'invalid_client', 7000229);
    } finally {
      emulator.ctx.directory.missingServicePrincipalError = 700016;
    }
  });

  test('AADSTS7000215: wrong client secret', async () => {
    assertError(await appToken(contoso.tenant.id, { client_secret: 'not-the-secret' }), 401, 'invalid_client', 7000215);
  });

  test('AADSTS7000222: expired client secret', async () => {
    const expired = { id: randomUUID(), value: 'expired-secret-value', expiresAtMs: emulator.ctx.clock.nowMs() + 60_000 };
    demoApp(emulator.ctx).secrets.push(expired);
    assert.equal((await appToken(contoso.tenant.id, { client_secret: expired.value })).status, 200);
    expired.expiresAtMs = emulator.ctx.clock.nowMs() - 1;
    assertError(await appToken(contoso.tenant.id, { client_secret: expired.value }), 401, 'invalid_client', 7000222);
  });

  test('AADSTS7000218: no credential sent', async () => {
    assertError(await token(contoso.tenant.id, { grant_type: 'client_credentials', client_id: emulator.demoApp.clientId, scope: GRAPH_DEFAULT }), 401, 'invalid_client', 7000218);
  });

  test('AADSTS700027: client assertion signed by another key, or naming an unknown certificate', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const forged = await assertion({}, { 'x5t#S256': cert.x5tS256 }, other);
    const fields = { grant_type: 'client_credentials', client_id: emulator.demoApp.clientId, scope: GRAPH_DEFAULT, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' };
    assertError(await token(contoso.tenant.id, { ...fields, client_assertion: forged }), 401, 'invalid_client', 700027);
    const unknown = await assertion({}, { x5t: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA' }, cert.keyPem, 'RS256');
    assertError(await token(contoso.tenant.id, { ...fields, client_assertion: unknown }), 401, 'invalid_client', 700027);
  });

  test('client assertion claims: wrong audience (AADSTS700023), foreign issuer (AADSTS700021), expired (AADSTS700024)', async () => {
    const fields = { grant_type: 'client_credentials', client_id: emulator.demoApp.clientId, scope: GRAPH_DEFAULT, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' };
    const header = { 'x5t#S256': cert.x5tS256 };
    const send = async (claims: Record<string, unknown>) => token(contoso.tenant.id, { ...fields, client_assertion: await assertion(claims, header, cert.keyPem) });
    assertError(await send({ aud: `${emulator.urls.authority}/${fabrikam.tenant.id}/oauth2/v2.0/token` }), 401, 'invalid_client', 700023);
    assertError(await send({ iss: randomUUID(), sub: randomUUID() }), 401, 'invalid_client', 700021);
    const past = Math.floor(Date.now() / 1000) - 3600;
    assertError(await send({ nbf: past - 600, exp: past }), 401, 'invalid_client', 700024);
    assert.equal((await send({ aud: `${emulator.urls.authority}/contoso.com/oauth2/v2.0/token` })).status, 401, 'a domain form the request did not use is not this endpoint');
  });

  test('AADSTS90002: tenant not found', async () => {
    assertError(await appToken('unknown.example'), 400, 'invalid_tenant', 90002);
    assertError(await appToken(randomUUID()), 400, 'invalid_tenant', 90002);
  });

  test('AADSTS7000112: app disabled', async () => {
    demoApp(emulator.ctx).disabled = true;
    try {
      assertError(await appToken(contoso.tenant.id), 400, 'unauthorized_client', 7000112);
    } finally {
      demoApp(emulator.ctx).disabled = false;
    }
    assert.equal((await appToken(contoso.tenant.id)).status, 200);
  });

  test('AADSTS65001: consent still propagating (suberror consent_required), then tokens come', async () => {
    const org = addOrg(emulator.ctx, 'Northwind', 'northwind.example');
    emulator.ctx.directory.consentPropagationSeconds = 30;
    try {
      consent(emulator.ctx, org);
    } finally {
      emulator.ctx.directory.consentPropagationSeconds = 0;
    }
    const res = await appToken(org.tenant.id);
    assertError(res, 400, 'invalid_grant', 65001);
    assert.equal(res.body.suberror, 'consent_required');
    emulator.ctx.clock.advance(31);
    assert.equal((await appToken(org.tenant.id)).status, 200);
  });

  test('AADSTS70011: bad scope', async () => {
    assertError(await appToken(contoso.tenant.id, { scope: 'User.Read.All' }), 400, 'invalid_scope', 70011);
    assertError(await appToken(contoso.tenant.id, { scope: 'https://graph.microsoft.com/User.Read.All' }), 400, 'invalid_scope', 70011);
  });

  test('AADSTS50059: client credentials without a tenant in the path (common, organizations)', async () => {
    assertError(await appToken('common'), 400, 'invalid_request', 50059);
    assertError(await appToken('organizations'), 400, 'invalid_request', 50059);
  });

  test('AADSTS70003: unsupported grant type', async () => {
    assertError(await appToken(contoso.tenant.id, { grant_type: 'password' }), 400, 'unsupported_grant_type', 70003);
  });

  test('AADSTS54005: code already redeemed', async () => {
    const { code, verifier } = await signInForCode(emulator, { username: 'user@contoso.com' });
    const fields = { grant_type: 'authorization_code', client_id: emulator.demoApp.clientId, client_secret: emulator.demoApp.clientSecret, code, redirect_uri: REDIRECT_URI, code_verifier: verifier, scope: 'User.Read' };
    const first = await token('organizations', fields);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.ok(first.body.id_token && first.body.refresh_token && first.body.client_info);
    assertError(await token('organizations', fields), 400, 'invalid_grant', 54005);
  });

  test('AADSTS501481: PKCE verifier mismatch', async () => {
    const { code } = await signInForCode(emulator, { username: 'user@contoso.com' });
    const fields = { grant_type: 'authorization_code', client_id: emulator.demoApp.clientId, client_secret: emulator.demoApp.clientSecret, code, redirect_uri: REDIRECT_URI, code_verifier: 'x'.repeat(43) };
    assertError(await token('organizations', fields), 400, 'invalid_grant', 501481);
  });

  test('AADSTS70008: unknown or expired code', async () => {
    const fields = { grant_type: 'authorization_code', client_id: emulator.demoApp.clientId, client_secret: emulator.demoApp.clientSecret, redirect_uri: REDIRECT_URI };
    assertError(await token('organizations', { ...fields, code: 'no-such-code' }), 400, 'invalid_grant', 70008);
    const { code, verifier } = await signInForCode(emulator, { username: 'user@contoso.com' });
    emulator.ctx.clock.advance(601);
    assertError(await token('organizations', { ...fields, code, code_verifier: verifier }), 400, 'invalid_grant', 70008);
  });

  test('AADSTS500112: redirect_uri at redemption differs from the one at authorize', async () => {
    const { code, verifier } = await signInForCode(emulator, { username: 'user@contoso.com' });
    const fields = { grant_type: 'authorization_code', client_id: emulator.demoApp.clientId, client_secret: emulator.demoApp.clientSecret, code, code_verifier: verifier };
    assertError(await token('organizations', { ...fields, redirect_uri: 'http://localhost:3000/signup/callback' }), 400, 'invalid_grant', 500112);
  });

  test('AADSTS7000218: authorization code without client credentials', async () => {
    const { code, verifier } = await signInForCode(emulator, { username: 'user@contoso.com' });
    const res = await token('organizations', { grant_type: 'authorization_code', client_id: emulator.demoApp.clientId, code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
    assertError(res, 401, 'invalid_client', 7000218);
  });

  test('AADSTS700082: refresh token expired (90 days of inactivity)', async () => {
    const { code, verifier } = await signInForCode(emulator, { username: 'user@contoso.com' });
    const base = { client_id: emulator.demoApp.clientId, client_secret: emulator.demoApp.clientSecret };
    const first = await token('organizations', { ...base, grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
    const refreshToken = String(first.body.refresh_token);
    const refreshed = await token('organizations', { ...base, grant_type: 'refresh_token', refresh_token: refreshToken, scope: 'User.Read offline_access openid' });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.ok(refreshed.body.refresh_token);
    emulator.ctx.clock.advance(91 * 86_400);
    assertError(await token('organizations', { ...base, grant_type: 'refresh_token', refresh_token: refreshToken, scope: 'User.Read' }), 400, 'invalid_grant', 700082);
  });
});
