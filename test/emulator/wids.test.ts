import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, consent, demoApp, type Org } from '../helpers/fixtures.ts';
import { signInForCode } from '../helpers/pages.ts';
import { GLOBAL_ADMINISTRATOR_ROLE_TEMPLATE_ID } from '../../src/emulator/model.ts';

const REDIRECT_URI = 'http://localhost:3000/auth/callback';

describe('ID tokens carry the directory roles (wids) as the app registration asks', () => {
  let emulator: TestEmulator;
  let contoso: Org;
  before(async () => {
    emulator = await startTestEmulator();
    contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
    consent(emulator.ctx, contoso);
  });
  after(async () => {
    await emulator.close();
  });

  async function idTokenClaims(username: string, client: { clientId: string; clientSecret: string }) {
    const { code, verifier } = await signInForCode(emulator, { username, extra: { client_id: client.clientId } });
    const res = await emulator.fetch(`${emulator.urls.authority}/organizations/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: client.clientId,
        client_secret: client.clientSecret,
        code,
        code_verifier: verifier,
        redirect_uri: REDIRECT_URI,
      }).toString(),
    });
    const body = (await res.json()) as { id_token: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    return decodeJwt(body.id_token);
  }

  test('the demo app asks for directory roles', () => {
    assert.equal(demoApp(emulator.ctx).groupMembershipClaims, 'DirectoryRole');
  });

  test('an administrator gets the Global Administrator template id', async () => {
    const claims = await idTokenClaims('admin@contoso.com', emulator.demoApp);
    assert.deepEqual(claims.wids, [GLOBAL_ADMINISTRATOR_ROLE_TEMPLATE_ID]);
  });

  test('a member holds no role, so the claim is left out', async () => {
    const claims = await idTokenClaims('user@contoso.com', emulator.demoApp);
    assert.equal(claims.oid, contoso.member.props.id);
    assert.equal('wids' in claims, false);
  });

  test('an app registered without the setting defaults to None and gets no claim, even for an administrator', async () => {
    const created = await emulator.control<{ appId: string; clientSecret: string; groupMembershipClaims: string }>('POST', '/apps', {
      displayName: 'No roles app',
      redirectUris: [REDIRECT_URI],
    });
    assert.equal(created.groupMembershipClaims, 'None');
    await emulator.control('POST', `/tenants/${contoso.tenant.id}/consent`, { appId: created.appId });
    const claims = await idTokenClaims('admin@contoso.com', { clientId: created.appId, clientSecret: created.clientSecret });
    assert.equal(claims.oid, contoso.admin.props.id);
    assert.equal('wids' in claims, false);
  });

  test('All and SecurityGroup emit the claim too; an unknown setting is refused', async () => {
    for (const setting of ['All', 'SecurityGroup']) {
      const created = await emulator.control<{ appId: string; clientSecret: string }>('POST', '/apps', {
        displayName: `${setting} app`,
        redirectUris: [REDIRECT_URI],
        groupMembershipClaims: setting,
      });
      await emulator.control('POST', `/tenants/${contoso.tenant.id}/consent`, { appId: created.appId });
      const claims = await idTokenClaims('admin@contoso.com', { clientId: created.appId, clientSecret: created.clientSecret });
      assert.deepEqual(claims.wids, [GLOBAL_ADMINISTRATOR_ROLE_TEMPLATE_ID], setting);
    }
    await assert.rejects(
      emulator.control('POST', '/apps', { displayName: 'Bad', groupMembershipClaims: 'Everything' }),
      /answered 400: .*groupMembershipClaims/,
    );
  });
});
