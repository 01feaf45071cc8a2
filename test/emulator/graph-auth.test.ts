import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client } from '@microsoft/microsoft-graph-client';
import { Agent } from 'undici';
import type { Tenant, UserRecord } from '../../src/emulator/model.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { appToken, userToken } from '../helpers/tokens.ts';

type Json = Record<string, unknown>;
const WWW_AUTHENTICATE =
  'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"';

describe('Graph bearer tokens, permissions and faults', () => {
  let emu: TestEmulator;
  let tenant: Tenant;
  let alice: UserRecord;

  const call = async (path: string, authorization?: string) => {
    const res = await emu.fetch(`${emu.urls.graph}${path}`, { headers: authorization === undefined ? {} : { authorization } });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : {}) as Json };
  };
  const bearer = (token: string) => `Bearer ${token}`;
  const errorOf = (body: Json) => body.error as { code: string; message: string; innerError: Json };

  const assertUnauthorized = (res: Awaited<ReturnType<typeof call>>, message: RegExp) => {
    assert.equal(res.status, 401);
    assert.equal(errorOf(res.body).code, 'InvalidAuthenticationToken');
    assert.match(errorOf(res.body).message, message);
    assert.equal(res.headers.get('www-authenticate'), WWW_AUTHENTICATE);
    assert.ok(errorOf(res.body).innerError.date);
  };

  before(async () => {
    emu = await startTestEmulator();
    tenant = emu.ctx.directory.addTenant({ displayName: 'Contoso', domains: ['contoso.onmicrosoft.com', 'contoso.com'], countryLetterCode: 'GB' });
    alice = emu.ctx.directory.addUser(tenant, { displayName: 'Alice', userPrincipalName: 'alice@contoso.com', jobTitle: 'CEO' });
    emu.ctx.directory.addUser(tenant, { displayName: 'Bob', userPrincipalName: 'bob@contoso.com' });
  });

  after(() => emu.close());

  test('an app token from the emulator\'s token endpoint reads users; one without consent is never issued', async () => {
    const app = emu.ctx.directory.requireApp(emu.ctx.demoAppId);
    emu.ctx.directory.grantAdminConsent(tenant, app);
    const res = await emu.fetch(`${emu.urls.authority}/${tenant.id}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: emu.demoApp.clientId,
        client_secret: emu.demoApp.clientSecret,
        scope: 'https://graph.microsoft.com/.default',
      }).toString(),
    });
    const issued = (await res.json()) as { access_token?: string };
    assert.equal(res.status, 200, JSON.stringify(issued));
    const users = await call('/v1.0/users?$select=displayName', bearer(issued.access_token!));
    assert.equal(users.status, 200);
    assert.deepEqual(
      (users.body.value as Json[]).map((u) => u.displayName),
      ['Alice', 'Bob'],
    );
    emu.ctx.directory.revokeConsent(tenant, app.appId);
  });

  test('401 without a token, with an empty one, and with garbage', async () => {
    assertUnauthorized(await call('/v1.0/users'), /^Access token is empty\.$/);
    assertUnauthorized(await call('/v1.0/users', 'Bearer '), /^Access token is empty\.$/);
    assertUnauthorized(await call('/v1.0/users', 'Bearer garbage'), /^IDX14100: JWT is not well formed/);
    assertUnauthorized(await call('/v1.0/organization', 'Bearer a.b.c'), /CompactToken parsing failed/);
  });

  test('401 for an expired token, including one that expires while cached', async () => {
    const expired = await appToken(emu.ctx, tenant.id, { expiresInSeconds: -120 });
    assertUnauthorized(await call('/v1.0/users', bearer(expired)), /expired/);

    const shortLived = await appToken(emu.ctx, tenant.id, { expiresInSeconds: 600 });
    assert.equal((await call('/v1.0/users', bearer(shortLived))).status, 200);
    emu.ctx.clock.advance(601);
    try {
      assertUnauthorized(await call('/v1.0/users', bearer(shortLived)), /expired/);
    } finally {
      emu.ctx.clock.advance(-601);
    }
  });

  test('401 for a bad signature, a wrong audience and an unknown tenant', async () => {
    const good = await appToken(emu.ctx, tenant.id);
    const [header, payload] = good.split('.');
    const forged = `${header}.${payload}.${Buffer.from('not the signature').toString('base64url')}`;
    assertUnauthorized(await call('/v1.0/users', bearer(forged)), /validation failure/);

    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), roles: ['Directory.ReadWrite.All'] })).toString('base64url')}.${good.split('.')[2]}`;
    assertUnauthorized(await call('/v1.0/users', bearer(tampered)), /validation failure/);

    const otherAudience = await appToken(emu.ctx, tenant.id, { claims: { aud: 'api://someone-else' } });
    assertUnauthorized(await call('/v1.0/users', bearer(otherAudience)), /Invalid audience/);

    const nowhere = randomUUID();
    const unknownTenant = await appToken(emu.ctx, nowhere, { claims: { tid: nowhere } });
    assertUnauthorized(await call('/v1.0/users', bearer(unknownTenant)), /validation failure/);
  });

  test('the Graph audience may be the URI or the app id', async () => {
    const byAppId = await appToken(emu.ctx, tenant.id, { claims: { aud: '00000003-0000-0000-c000-000000000000' } });
    assert.equal((await call('/v1.0/users', bearer(byAppId))).status, 200);
  });

  test('403 Authorization_RequestDenied without a role or scope that reads users', async () => {
    const noRoles = await appToken(emu.ctx, tenant.id, { roles: [] });
    const res = await call('/v1.0/users', bearer(noRoles));
    assert.equal(res.status, 403);
    assert.equal(errorOf(res.body).code, 'Authorization_RequestDenied');
    assert.equal(errorOf(res.body).message, 'Insufficient privileges to complete the operation.');
    assert.equal((await call('/v1.0/users/delta', bearer(noRoles))).status, 403);
    assert.equal((await call(`/v1.0/users/${alice.props.id}`, bearer(noRoles))).status, 403);

    const mailOnly = await appToken(emu.ctx, tenant.id, { roles: ['Mail.Read'] });
    assert.equal((await call('/v1.0/users', bearer(mailOnly))).status, 403);
    const directory = await appToken(emu.ctx, tenant.id, { roles: ['Directory.Read.All'] });
    assert.equal((await call('/v1.0/users', bearer(directory))).status, 200);

    // A delegated User.Read (what a misconfigured app gets) does not list users; User.Read.All does.
    const userRead = await userToken(emu.ctx, tenant.id, alice.props.id, 'User.Read');
    assert.equal((await call('/v1.0/users', bearer(userRead))).status, 403);
    const userReadAll = await userToken(emu.ctx, tenant.id, alice.props.id, 'User.Read User.Read.All');
    assert.equal((await call('/v1.0/users', bearer(userReadAll))).status, 200);
  });

  test('/me answers the signed-in user for delegated tokens and refuses app tokens', async () => {
    const delegated = await userToken(emu.ctx, tenant.id, alice.props.id, 'openid profile User.Read');
    const me = await call('/v1.0/me', bearer(delegated));
    assert.equal(me.status, 200);
    assert.equal(me.body['@odata.context'], `${emu.urls.graph}/v1.0/$metadata#users/$entity`);
    assert.equal(me.body.id, alice.props.id);
    assert.equal(me.body.userPrincipalName, 'alice@contoso.com');
    assert.equal(me.body.jobTitle, 'CEO');

    const selected = await call('/v1.0/me?$select=displayName', bearer(delegated));
    assert.deepEqual(selected.body, { '@odata.context': `${emu.urls.graph}/v1.0/$metadata#users(displayName)/$entity`, displayName: 'Alice' });

    // With User.Read a user may read their own record by id, but nobody else's.
    assert.equal((await call(`/v1.0/users/${alice.props.id}`, bearer(delegated))).status, 200);
    assert.equal((await call('/v1.0/users/bob@contoso.com', bearer(delegated))).status, 403);

    const app = await appToken(emu.ctx, tenant.id);
    const refused = await call('/v1.0/me', bearer(app));
    assert.equal(refused.status, 400);
    assert.equal(errorOf(refused.body).code, 'BadRequest');
    assert.equal(errorOf(refused.body).message, '/me request is only valid with delegated authentication flow.');

    const openidOnly = await userToken(emu.ctx, tenant.id, alice.props.id, 'openid profile');
    assert.equal((await call('/v1.0/me', bearer(openidOnly))).status, 403);
  });

  test('/organization describes the tenant and its verified domains', async () => {
    const token = await appToken(emu.ctx, tenant.id, { roles: [] });
    const res = await call('/v1.0/organization', bearer(token));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      '@odata.context': `${emu.urls.graph}/v1.0/$metadata#organization`,
      value: [
        {
          id: tenant.id,
          displayName: 'Contoso',
          verifiedDomains: [
            { capabilities: 'Email, OfficeCommunicationsOnline', isDefault: false, isInitial: true, name: 'contoso.onmicrosoft.com', type: 'Managed' },
            { capabilities: 'Email, OfficeCommunicationsOnline', isDefault: true, isInitial: false, name: 'contoso.com', type: 'Managed' },
          ],
          tenantType: 'AAD',
          countryLetterCode: 'GB',
          createdDateTime: tenant.createdDateTime,
        },
      ],
    });
  });

  test('revoking consent does not invalidate tokens already issued', async () => {
    const app = emu.ctx.directory.requireApp(emu.ctx.demoAppId);
    emu.ctx.directory.grantAdminConsent(tenant, app);
    const token = await appToken(emu.ctx, tenant.id);
    assert.equal((await call('/v1.0/users', bearer(token))).status, 200);
    emu.ctx.directory.revokeConsent(tenant, app.appId);
    assert.equal((await call('/v1.0/users', bearer(token))).status, 200);
  });

  test('revoking consent with its tokens refuses the tokens already issued (continuous access evaluation), not those after a new consent', async () => {
    const app = emu.ctx.directory.requireApp(emu.ctx.demoAppId);
    emu.ctx.directory.grantAdminConsent(tenant, app);
    const token = await appToken(emu.ctx, tenant.id);
    assert.equal((await call('/v1.0/users', bearer(token))).status, 200, 'verified and cached before the revocation');
    emu.ctx.directory.revokeConsent(tenant, app.appId, { revokeTokens: true });
    assertUnauthorized(await call('/v1.0/users', bearer(token)), /TokenIssuedBeforeRevocationTimestamp/);
    const earlier = await appToken(emu.ctx, tenant.id, { claims: { iat: emu.ctx.clock.nowSeconds() - 30 } });
    assertUnauthorized(await call('/v1.0/users', bearer(earlier)), /TokenIssuedBeforeRevocationTimestamp/);

    emu.ctx.clock.advance(2);
    emu.ctx.directory.grantAdminConsent(tenant, app);
    assert.equal((await call('/v1.0/users', bearer(await appToken(emu.ctx, tenant.id)))).status, 200, 'a token after the new consent works');
    emu.ctx.directory.revokeConsent(tenant, app.appId);

    // Token times are whole seconds: a consent granted again within the revocation's second still gets working tokens.
    emu.ctx.directory.grantAdminConsent(tenant, app);
    emu.ctx.directory.revokeConsent(tenant, app.appId, { revokeTokens: true });
    emu.ctx.directory.grantAdminConsent(tenant, app);
    assert.equal((await call('/v1.0/users', bearer(await appToken(emu.ctx, tenant.id)))).status, 200, 'a token of the consent granted again at once works');
    emu.ctx.directory.revokeConsent(tenant, app.appId);
    // The tests after this one take tokens without consenting again: past the revocation's second.
    emu.ctx.clock.advance(2);
  });

  test('a throttle fault gives 429 TooManyRequests with Retry-After, then the next request succeeds', async () => {
    const token = await appToken(emu.ctx, tenant.id);
    const fault = emu.ctx.faults.add({ target: 'graph', kind: 'throttle', retryAfter: '2.5', count: 1 });
    try {
      const throttled = await call('/v1.0/users', bearer(token));
      assert.equal(throttled.status, 429);
      assert.equal(throttled.headers.get('retry-after'), '2.5');
      assert.equal(errorOf(throttled.body).code, 'TooManyRequests');
      assert.equal((await call('/v1.0/users', bearer(token))).status, 200);
    } finally {
      emu.ctx.faults.remove(fault.id);
    }
  });

  test('the Graph client waits out a 429 by itself and gets the page', async () => {
    const token = await appToken(emu.ctx, tenant.id);
    const dispatcher = new Agent({ connect: { ca: emu.caCertPem } });
    const fault = emu.ctx.faults.add({ target: 'graph', kind: 'throttle', retryAfter: '0.2', count: 1, tenant: tenant.id });
    try {
      const client = Client.init({
        authProvider: (done) => done(null, token),
        baseUrl: emu.urls.graph,
        customHosts: new Set(['localhost']),
        fetchOptions: { dispatcher } as RequestInit,
      });
      const page = (await client.api('/users').select('id').get()) as { value: Json[] };
      assert.equal(page.value.length, 2);
      assert.equal(emu.ctx.faults.list().find((f) => f.id === fault.id)?.hits, 1);
    } finally {
      emu.ctx.faults.remove(fault.id);
      await dispatcher.close();
    }
  });

  test('a per-tenant fault hits only that tenant', async () => {
    const other = emu.ctx.directory.addTenant({ displayName: 'Fabrikam', domains: ['fabrikam.onmicrosoft.com'] });
    const contosoToken = await appToken(emu.ctx, tenant.id);
    const fabrikamToken = await appToken(emu.ctx, other.id);
    const fault = emu.ctx.faults.add({ target: 'graph', kind: 'unavailable', retryAfter: '1', tenant: other.id, count: 5 });
    try {
      assert.equal((await call('/v1.0/users', bearer(contosoToken))).status, 200);
      const failed = await call('/v1.0/users', bearer(fabrikamToken));
      assert.equal(failed.status, 503);
      assert.equal(errorOf(failed.body).code, 'ServiceUnavailable');
      assert.equal((await call('/v1.0/organization', bearer(contosoToken))).status, 200);
    } finally {
      emu.ctx.faults.remove(fault.id);
    }
  });

  test('a drop fault makes the client see a connection error', async () => {
    const token = await appToken(emu.ctx, tenant.id);
    const fault = emu.ctx.faults.add({ target: 'graph', kind: 'drop', count: 1 });
    try {
      await assert.rejects(() => emu.fetch(`${emu.urls.graph}/v1.0/users`, { headers: { authorization: bearer(token) } }), TypeError);
      assert.equal((await call('/v1.0/users', bearer(token))).status, 200);
    } finally {
      emu.ctx.faults.remove(fault.id);
    }
  });
});
