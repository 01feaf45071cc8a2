import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, importPKCS8, SignJWT } from 'jose';
import { Clock } from '../../src/emulator/clock.ts';
import { Directory } from '../../src/emulator/model.ts';
import { loadState, saveState } from '../../src/emulator/persistence.ts';
import { DEVICE_CODE_CLIENT_ID } from '../../src/emulator/server.ts';
import { generateAppCertificate } from '../../src/identity/certificate.ts';
import { Browser } from '../helpers/browser.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { appToken, userToken } from '../helpers/tokens.ts';

const USER_READ_ALL = 'df021288-bdef-4463-88db-98f22de89214';
const GROUP_MEMBER_READ_ALL = '98830695-27a2-44f7-8c18-0c3ebc9698f6';
const GRAPH = '00000003-0000-0000-c000-000000000000';

describe('emulator: app registrations through Graph and the device code flow', () => {
  let emulator: TestEmulator;
  let vendor: Org;
  let other: Org;
  before(async () => {
    emulator = await startTestEmulator({ deviceCodeIntervalSeconds: 1 });
    vendor = addOrg(emulator.ctx, 'Vendor', 'vendor.example');
    other = addOrg(emulator.ctx, 'Other', 'other.example');
  });
  after(() => emulator.close());

  const graph = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await emulator.fetch(`${emulator.urls.graph}/v1.0${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> & { error?: { code: string; message: string }; value?: Record<string, unknown>[] } };
  };
  const adminToken = (org: Org, scp = 'Application.ReadWrite.All') => userToken(emulator.ctx, org.tenant.id, org.admin.props.id, scp);
  const keyCredential = (pem: string) => ({ type: 'AsymmetricX509Cert', usage: 'Verify', key: new X509Certificate(pem).raw.toString('base64') });
  const proof = async (pem: string, objectId: string, claims: { aud?: string; lifetime?: number } = {}) => {
    const der = new X509Certificate(pem).raw;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', x5t: createHash('sha1').update(der).digest('base64url') })
      .setAudience(claims.aud ?? '00000002-0000-0000-c000-000000000000')
      .setIssuer(objectId)
      .setNotBefore(now)
      .setExpirationTime(now + (claims.lifetime ?? 300))
      .sign(await importPKCS8(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(pem)![0], 'RS256'));
  };

  it('creates, finds, patches and lists a registration in the caller tenant only; what it asks for reaches admin consent and app tokens', async () => {
    const token = await adminToken(vendor);
    const created = await graph(token, 'POST', '/applications', {
      displayName: 'Roster',
      signInAudience: 'AzureADMultipleOrgs',
      web: { redirectUris: ['https://roster.example.com/auth/callback'] },
      requiredResourceAccess: [{ resourceAppId: GRAPH, resourceAccess: [{ id: USER_READ_ALL, type: 'Role' }, { id: GROUP_MEMBER_READ_ALL, type: 'Role' }] }],
      groupMembershipClaims: 'DirectoryRole',
      optionalClaims: { idToken: [{ name: 'login_hint' }] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const appId = created.body.appId as string;
    const id = created.body.id as string;
    const registration = emulator.ctx.directory.requireApp(appId);
    assert.deepEqual(registration.requiredAppRoles, ['User.Read.All', 'GroupMember.Read.All'], 'Graph role ids become the permission names tokens carry');
    assert.equal(registration.homeTenantId, vendor.tenant.id);

    const found = await graph(token, 'GET', `/applications?$filter=${encodeURIComponent(`appId eq '${appId}'`)}`);
    assert.deepEqual(found.body.value!.map((a) => a.id), [id]);
    const elsewhere = await graph(await adminToken(other), 'GET', `/applications?$filter=${encodeURIComponent(`appId eq '${appId}'`)}`);
    assert.deepEqual(elsewhere.body.value, [], "another tenant's Graph does not list it");
    assert.equal((await graph(await adminToken(other), 'GET', `/applications/${id}`)).status, 404);

    assert.equal((await graph(token, 'PATCH', `/applications/${id}`, { web: { redirectUris: ['https://roster2.example.com/auth/callback'] } })).status, 204);
    assert.deepEqual(registration.redirectUris, ['https://roster2.example.com/auth/callback']);
    const refused = await graph(token, 'PATCH', `/applications/${id}`, { web: { redirectUris: ['http://roster.example.com/x'] } });
    assert.equal(refused.status, 400, 'http redirect URIs only for localhost');
    assert.equal((await graph(token, 'PATCH', `/applications/${id}`, { appId: 'x' })).status, 400, 'read-only properties are refused');
    assert.equal((await graph(token, 'GET', '/applications?$filter=displayName eq \'x\'')).status, 400);

    const secret = await graph(token, 'POST', `/applications/${id}/addPassword`, { passwordCredential: { displayName: 'ci' } });
    assert.equal(secret.status, 200);
    assert.equal(typeof secret.body.secretText, 'string');
    const listed = await graph(token, 'GET', `/applications/${id}`);
    assert.equal((listed.body.passwordCredentials as Record<string, unknown>[])[0]!.secretText, null, 'the secret text is shown once');

    const sp = await graph(token, 'POST', '/servicePrincipals', { appId });
    assert.equal(sp.status, 201);
    assert.equal((await graph(token, 'POST', '/servicePrincipals', { appId })).status, 409);
    assert.equal((await graph(token, 'GET', `/servicePrincipals?$filter=${encodeURIComponent(`appId eq '${appId}'`)}`)).body.value!.length, 1);

    // A customer's admin consent grants what the registration asks for; client credentials then carry it.
    emulator.ctx.directory.grantAdminConsent(other.tenant, registration);
    const res = await emulator.fetch(`${emulator.urls.authority}/${other.tenant.id}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: appId, client_secret: secret.body.secretText as string, scope: 'https://graph.microsoft.com/.default' }).toString(),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(decodeJwt(((await res.json()) as { access_token: string }).access_token).roles, ['User.Read.All', 'GroupMember.Read.All']);

    assert.equal((await graph(token, 'POST', `/applications/${id}/removePassword`, { keyId: secret.body.keyId })).status, 204);
    assert.equal(registration.secrets.length, 0);
  });

  it('403 Authorization_RequestDenied for a non-administrator, a token without Application.ReadWrite.All, or an app without the role', async () => {
    const body = { displayName: 'Nope' };
    const member = await graph(await userToken(emulator.ctx, vendor.tenant.id, vendor.member.props.id, 'Application.ReadWrite.All'), 'POST', '/applications', body);
    assert.equal(member.status, 403);
    assert.equal(member.body.error!.code, 'Authorization_RequestDenied');
    assert.equal((await graph(await adminToken(vendor, 'User.Read'), 'POST', '/applications', body)).status, 403);
    assert.equal((await graph(await adminToken(vendor, 'User.Read'), 'GET', '/applications')).status, 403);
    assert.equal((await graph(await appToken(emulator.ctx, vendor.tenant.id), 'POST', '/applications', body)).status, 403);
    assert.equal((await graph(await appToken(emulator.ctx, vendor.tenant.id, { roles: ['Application.ReadWrite.All'] }), 'POST', '/applications', body)).status, 201);
    // A member may read registrations (as in Entra), not change them.
    assert.equal((await graph(await userToken(emulator.ctx, vendor.tenant.id, vendor.member.props.id, 'Application.Read.All'), 'GET', '/applications')).status, 200);
  });

  it('keyCredentials by PATCH; addKey and removeKey only with a proof signed by a current certificate, never a forged one', async () => {
    const token = await adminToken(vendor);
    const { body } = await graph(token, 'POST', '/applications', { displayName: 'Keys' });
    const id = body.id as string;
    const registration = emulator.ctx.directory.requireApp(body.appId as string);
    const first = await generateAppCertificate('first');
    const second = await generateAppCertificate('second');
    const stranger = await generateAppCertificate('stranger');
    assert.equal((await graph(token, 'PATCH', `/applications/${id}`, { keyCredentials: [keyCredential(first)] })).status, 204);
    assert.equal(registration.certificates.length, 1);
    assert.equal((await graph(token, 'PATCH', `/applications/${id}`, { keyCredentials: [{ type: 'AsymmetricX509Cert', usage: 'Verify', key: 'bm90IGEgY2VydA==' }] })).status, 400);

    const forged = await graph(token, 'POST', `/applications/${id}/addKey`, { keyCredential: keyCredential(stranger), proof: await proof(stranger, id) });
    assert.equal(forged.status, 400, 'a proof signed by a key the app does not have is refused');
    assert.match(forged.body.error!.message, /not signed by a certificate of this application/);
    assert.equal((await graph(token, 'POST', `/applications/${id}/addKey`, { keyCredential: keyCredential(second), proof: await proof(first, 'another-object-id') })).status, 400, 'issuer must be the application');
    assert.equal((await graph(token, 'POST', `/applications/${id}/addKey`, { keyCredential: keyCredential(second), proof: await proof(first, id, { aud: 'x' }) })).status, 400);
    assert.equal((await graph(token, 'POST', `/applications/${id}/addKey`, { keyCredential: keyCredential(second), proof: await proof(first, id, { lifetime: 3600 }) })).status, 400, 'proofs live 10 minutes at most');
    assert.equal(registration.certificates.length, 1);

    const added = await graph(token, 'POST', `/applications/${id}/addKey`, { keyCredential: keyCredential(second), proof: await proof(first, id) });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.equal(registration.certificates.length, 2);
    const firstKeyId = registration.certificates[0]!.id;
    assert.equal((await graph(token, 'POST', `/applications/${id}/removeKey`, { keyId: firstKeyId, proof: await proof(stranger, id) })).status, 400);
    assert.equal((await graph(token, 'POST', `/applications/${id}/removeKey`, { keyId: firstKeyId, proof: await proof(second, id) })).status, 204);
    assert.deepEqual(registration.certificates.map((c) => c.id), [added.body.keyId]);
  });

  it('a registration made through Graph survives a save and a load with everything Graph set', async () => {
    const token = await adminToken(vendor);
    const cert = await generateAppCertificate('saved');
    const { body } = await graph(token, 'POST', '/applications', {
      displayName: 'Saved',
      signInAudience: 'AzureADMultipleOrgs',
      web: { redirectUris: ['https://saved.example.com/auth/callback'] },
      groupMembershipClaims: 'DirectoryRole',
      optionalClaims: { idToken: [{ name: 'login_hint' }] },
      keyCredentials: [keyCredential(cert)],
    });
    await graph(token, 'POST', `/applications/${body.id as string}/addPassword`, {});
    const dir = await mkdtemp(join(tmpdir(), 'roster-apps-'));
    try {
      await saveState(dir, emulator.ctx.directory);
      const loaded = new Directory(new Clock());
      assert.equal(await loadState(dir, loaded), true);
      assert.deepEqual(loaded.requireApp(body.appId as string), emulator.ctx.directory.requireApp(body.appId as string));
      assert.deepEqual(loaded.requireApp(DEVICE_CODE_CLIENT_ID), emulator.ctx.directory.requireApp(DEVICE_CODE_CLIENT_ID));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('device code flow', () => {
    const deviceCode = async (tenant = 'organizations', clientId = DEVICE_CODE_CLIENT_ID) => {
      const res = await emulator.fetch(`${emulator.urls.authority}/${tenant}/oauth2/v2.0/devicecode`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: clientId, scope: 'https://graph.microsoft.com/Application.ReadWrite.All offline_access' }).toString(),
      });
      return { status: res.status, body: (await res.json()) as Record<string, string | number> };
    };
    const poll = async (code: string, clientId = DEVICE_CODE_CLIENT_ID) => {
      const res = await emulator.fetch(`${emulator.urls.authority}/organizations/oauth2/v2.0/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: clientId, device_code: code }).toString(),
      });
      return { status: res.status, body: (await res.json()) as Record<string, string> };
    };
    /** Enters the code and signs in. */
    const enter = async (userCode: string, username: string) => {
      const browser = new Browser();
      const signIn = await browser.post(`${emulator.urls.pages}/devicelogin`, { otc: userCode });
      return browser.follow(await browser.submitForm(signIn, { username, password: 'pw' }));
    };

    it('pending, slow_down, then a delegated Graph token for the person who entered the code; single use', async () => {
      const started = await deviceCode();
      assert.equal(started.status, 200);
      assert.match(String(started.body.user_code), /^[A-Z2-9]{9}$/);
      assert.equal(started.body.verification_uri, `${emulator.urls.pages}/devicelogin`);
      assert.equal(started.body.interval, 1);
      assert.equal(started.body.expires_in, 900);
      const code = String(started.body.device_code);
      assert.equal((await poll(code)).body.error, 'authorization_pending');
      assert.equal((await poll(code)).body.error, 'slow_down', 'polling faster than the interval');
      const done = await enter(String(started.body.user_code), vendor.admin.props.userPrincipalName);
      assert.match(done.html, /You have signed in to the Microsoft Azure CLI application/);
      await new Promise((r) => setTimeout(r, 1000));
      const token = await poll(code);
      assert.equal(token.status, 200, JSON.stringify(token.body));
      const claims = decodeJwt(token.body.access_token!);
      assert.equal(claims.tid, vendor.tenant.id);
      assert.equal(claims.oid, vendor.admin.props.id);
      assert.equal(claims.appidacr, '0');
      assert.match(String(claims.scp), /Application\.ReadWrite\.All/);
      assert.equal((await poll(code)).body.error, 'invalid_grant', 'a device code is redeemed once');
      // The code cannot be entered twice either.
      const again = await new Browser().post(`${emulator.urls.pages}/devicelogin`, { otc: String(started.body.user_code) });
      assert.equal(again.status, 400);
    });

    it('authorization_declined when the person cancels, expired_token after 15 minutes, and another client cannot redeem the code', async () => {
      const cancelled = await deviceCode();
      const entry = emulator.ctx.deviceCodes.byDeviceCode(String(cancelled.body.device_code))!;
      const page = await new Browser().get(`${emulator.urls.pages}/devicelogin/complete?error=access_denied&state=${entry.signInState}`);
      assert.match(page.html, /Sign-in cancelled/);
      assert.equal((await poll(String(cancelled.body.device_code))).body.error, 'authorization_declined');

      const stolen = await deviceCode();
      assert.equal((await poll(String(stolen.body.device_code), emulator.demoApp.clientId)).body.error, 'invalid_grant', "another app cannot redeem this client's device code");

      const late = await deviceCode();
      emulator.ctx.clock.advance(901);
      try {
        assert.equal((await poll(String(late.body.device_code))).body.error, 'expired_token');
        assert.equal((await new Browser().post(`${emulator.urls.pages}/devicelogin`, { otc: String(late.body.user_code) })).status, 400);
      } finally {
        emulator.ctx.clock.advance(-901);
      }
    });

    it('a forged completion (a code from another flow, or none) approves nothing', async () => {
      const started = await deviceCode();
      const entry = emulator.ctx.deviceCodes.byDeviceCode(String(started.body.device_code))!;
      const forged = await new Browser().get(`${emulator.urls.pages}/devicelogin/complete?code=made-up&state=${entry.signInState}`);
      assert.equal(forged.status, 400);
      assert.equal(entry.outcome, undefined);
      assert.equal((await poll(String(started.body.device_code))).body.error, 'authorization_pending');
    });
  });
});
