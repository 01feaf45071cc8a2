import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ControlClient, ControlError } from '../../src/emulator/control-client.ts';
import { createRsaKeyWithCertificate, describeCertificate } from '../../src/emulator/pki.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';

async function status(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (err) {
    assert.ok(err instanceof ControlError, String(err));
    return err.status;
  }
}

describe('control API', () => {
  let emu: TestEmulator;
  let client: ControlClient;
  before(async () => {
    emu = await startTestEmulator({ seed: { kind: 'generate', tenants: 2, usersPerTenant: 40, seed: 11, consentedTenants: 1 } });
    client = new ControlClient(emu.urls.control, emu.ctx.controlToken);
  });
  after(async () => {
    await emu.close();
  });

  test('every route needs the control token', async () => {
    for (const [method, path] of [
      ['GET', '/state'],
      ['POST', '/tenants'],
      ['POST', '/keys/rotate'],
      ['DELETE', '/faults'],
      ['POST', '/save'],
    ]) {
      const none = await emu.fetch(`${emu.urls.control}${path}`, { method: method! });
      assert.equal(none.status, 401, `${method} ${path} without a token`);
      const wrong = await emu.fetch(`${emu.urls.control}${path}`, { method: method!, headers: { authorization: `Bearer ${emu.ctx.controlToken}x` } });
      assert.equal(wrong.status, 401, `${method} ${path} with a wrong token`);
    }
    const ok = await emu.fetch(`${emu.urls.control}/state`, { headers: { authorization: `Bearer ${emu.ctx.controlToken}` } });
    assert.equal(ok.status, 200);
  });

  test('state summarises tenants, apps and settings', async () => {
    const state = await client.state();
    assert.equal(state.demoAppId, emu.demoApp.clientId);
    assert.deepEqual(state.tenants.map((t) => [t.displayName, t.userCount, t.consentedApps.map((a) => a.appId)]), [
      ['Contoso', 40, [emu.demoApp.clientId]],
      ['Fabrikam', 40, []],
    ]);
    assert.deepEqual(state.tenants[0]!.consentedApps[0]!.appRoles, ['User.Read.All', 'GroupMember.Read.All']);
    assert.equal(state.tenants[0]!.admin, 'admin@contoso.com');
    assert.equal(state.apps[0]!.displayName, 'Roster (demo)');
    assert.equal(state.settings.missingServicePrincipalError, 700016);
    assert.equal(state.signingKeys.current, emu.ctx.keyring.currentKid);
  });

  test('tenants: create (with generated users and consent), edit, remove', async () => {
    const created = await client.addTenant({ displayName: 'Acme Widgets', generateUsers: 25, seed: 3, consent: true, countryLetterCode: 'NL' });
    assert.deepEqual(created.domains, ['acmewidgets.onmicrosoft.com', 'acmewidgets.com']);
    assert.equal(created.userCount, 25);
    assert.equal(created.admin, 'admin@acmewidgets.com');
    assert.equal(created.countryLetterCode, 'NL');
    assert.equal(created.consentedApps[0]!.appId, emu.demoApp.clientId);
    assert.equal(emu.ctx.directory.findTenant('acmewidgets.com')!.changeLog.length, 25);

    const edited = await client.editTenant('acmewidgets.com', { displayName: 'Acme & Sons', addDomains: ['acme.example'] });
    assert.equal(edited.displayName, 'Acme & Sons');
    assert.ok(emu.ctx.directory.findTenant('acme.example'));
    assert.equal(await status(client.addTenant({ displayName: 'Clash', domains: ['acme.example'] })), 409);

    await client.removeTenant(created.id);
    assert.equal(emu.ctx.directory.findTenant(created.id), undefined);
    assert.equal(await status(client.getTenant(created.id)), 404);
  });

  test('bad input is a 400 that names the field', async () => {
    const res = await emu.fetch(`${emu.urls.control}/tenants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${emu.ctx.controlToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ displayName: 'X', domains: ['not a domain'] }),
    });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /domains\[0\]: must be a domain name/);
    const err = await client.addUser('contoso.com', { userPrincipalName: 'x@contoso.com', accountEnabled: 'yes' as unknown as boolean }).catch((e: ControlError) => e);
    assert.ok(err instanceof ControlError);
    assert.equal(err.status, 400);
    assert.match(err.message, /accountEnabled/);
    assert.equal(await status(client.updateSettings({ missingServicePrincipalError: 123 as 700016 })), 400);
  });

  test('users: add, edit, soft delete, restore, purge; each change feeds the change log', async () => {
    const tenant = emu.ctx.directory.requireTenant('fabrikam.com');
    const seq0 = tenant.seq;
    const user = await client.addUser('fabrikam.com', { userPrincipalName: 'sam.o.brien@fabrikam.com', displayName: "Sam O'Brien", jobTitle: 'R&D Lead', password: 'sam-pass', admin: true });
    assert.equal(user.displayName, "Sam O'Brien");
    assert.equal(user.admin, true);
    assert.equal(emu.ctx.directory.findUserByUpn('sam.o.brien@fabrikam.com')!.user.password, 'sam-pass');
    assert.equal(tenant.seq, seq0 + 1);
    assert.deepEqual((await client.changes('fabrikam.com', seq0)).changes, [{ seq: seq0 + 1, userId: user.id }]);

    const edited = await client.editUser(tenant.id, 'sam.o.brien@fabrikam.com', { department: 'Research', accountEnabled: false });
    assert.equal(edited.department, 'Research');
    assert.deepEqual(tenant.changeLog.at(-1), { seq: seq0 + 2, userId: user.id, changed: ['department', 'accountEnabled'] });

    await client.deleteUser('fabrikam.com', user.id);
    assert.equal((await client.getTenant('fabrikam.com')).deletedCount, 1);
    assert.equal((await client.getUser('fabrikam.com', user.id)).deleted, true);
    assert.equal(tenant.seq, seq0 + 3);

    const restored = await client.restoreUser('fabrikam.com', 'sam.o.brien@fabrikam.com');
    assert.equal(restored.id, user.id);
    assert.equal((await client.getUser('fabrikam.com', user.id)).deleted, false);

    // Purging an active user and one already in deleted items.
    await client.purgeUser('fabrikam.com', user.id);
    const other = tenant.users[3]!.props;
    await client.deleteUser('fabrikam.com', other.userPrincipalName);
    await client.purgeUser('fabrikam.com', other.userPrincipalName);
    const summary = await client.getTenant('fabrikam.com');
    assert.equal(summary.deletedCount, 0);
    assert.equal(summary.purgedCount, 2);
    assert.equal(tenant.seq, seq0 + 7);
    assert.equal(await status(client.restoreUser('fabrikam.com', user.id)), 404);
    assert.equal(await status(client.getUser('fabrikam.com', 'nobody@fabrikam.com')), 404);
  });

  test('consent: grant without the UI, revoke by deleting the service principal', async () => {
    await client.updateSettings({ consentPropagationSeconds: 60 });
    const granted = await client.grantConsent('fabrikam.com');
    assert.equal(granted.appId, emu.demoApp.clientId);
    assert.deepEqual(granted.appRoles, ['User.Read.All', 'GroupMember.Read.All']);
    assert.ok(Date.parse(granted.readyAt) > Date.now() + 50_000, 'propagation delay applies');
    const tenant = emu.ctx.directory.requireTenant('fabrikam.com');
    assert.ok(tenant.servicePrincipals.has(emu.demoApp.clientId));
    await client.revokeConsent('fabrikam.com');
    assert.equal(tenant.servicePrincipals.size, 0);
    assert.equal(await status(client.revokeConsent('fabrikam.com')), 404);
    await client.updateSettings({ consentPropagationSeconds: 0 });
  });

  test('keys: rotate, and the emergency rollover drops the earlier keys', async () => {
    const before = emu.ctx.keyring.currentKid;
    const rotated = await client.rotateKeys();
    assert.notEqual(rotated.kid, before);
    assert.equal(emu.ctx.keyring.currentKid, rotated.kid);
    assert.ok(rotated.kids.includes(before));
    assert.equal(rotated.saved, false);
    const dropped = await client.rotateKeys({ dropPrevious: true });
    assert.deepEqual(dropped.kids, [dropped.kid]);
  });

  test('delta expire moves the floor past every issued token', async () => {
    const tenant = emu.ctx.directory.requireTenant('contoso.com');
    const result = await client.expireDelta('contoso.com');
    assert.equal(result.deltaFloor, tenant.seq + 1);
    assert.equal(tenant.deltaFloor, tenant.seq + 1);
  });

  test('apps: register, disable and enable, certificates, secrets, redirect URIs', async () => {
    const app = await client.addApp({ displayName: 'Other app', redirectUris: ['http://localhost:4000/cb'] });
    assert.ok(app.clientSecret && app.clientSecret.length >= 30);
    assert.equal(emu.ctx.directory.requireApp(app.appId).secrets[0]!.value, app.clientSecret);

    assert.equal((await client.disableApp()).disabled, true);
    assert.equal(emu.ctx.directory.requireApp(emu.demoApp.clientId).disabled, true);
    assert.equal((await client.enableApp('demo')).disabled, false);
    assert.equal((await client.disableApp(app.appId)).disabled, true);

    const { certPem } = await createRsaKeyWithCertificate('client');
    const cert = await client.addCertificate(app.appId, certPem);
    const info = describeCertificate(certPem);
    assert.equal(cert.x5t, info.x5t);
    assert.equal(cert.x5tS256, info.x5tS256);
    const stored = emu.ctx.directory.requireApp(app.appId).certificates[0]!;
    assert.match(stored.publicKeyPem, /BEGIN PUBLIC KEY/);
    assert.equal(await status(client.addCertificate(app.appId, '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n')), 400);

    const expired = await client.addSecret(app.appId, { expiresAt: '2020-01-01T00:00:00Z' });
    assert.equal(expired.expiresAt, '2020-01-01T00:00:00.000Z');
    assert.ok(emu.ctx.directory.requireApp(app.appId).secrets.some((s) => s.value === expired.value && s.expiresAtMs < Date.now()));

    const withUri = await client.addRedirectUri(app.appId, 'http://localhost:4000/other');
    assert.deepEqual(withUri.redirectUris, ['http://localhost:4000/cb', 'http://localhost:4000/other']);
    const withLogout = await client.addRedirectUri(app.appId, 'http://localhost:4000/', 'postLogout');
    assert.deepEqual(withLogout.postLogoutRedirectUris, ['http://localhost:4000/']);
    assert.equal(await status(client.disableApp('00000000-0000-4000-8000-000000000000')), 404);
  });

  test('faults: add, list, hit the next N requests, remove, clear', async () => {
    const contoso = emu.ctx.directory.requireTenant('contoso.com');
    const fault = await client.addFault({ target: 'token', kind: 'throttle', retryAfter: 2, count: 1, tenant: 'contoso.com' });
    assert.equal(fault.tenant, contoso.id);
    assert.equal(fault.retryAfter, '2');
    assert.deepEqual((await client.listFaults()).faults.map((f) => f.id), [fault.id]);
    const tokenUrl = `${emu.urls.authority}/${contoso.id}/oauth2/v2.0/token`;
    const first = await emu.fetch(tokenUrl, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) });
    assert.equal(first.status, 429);
    assert.equal(first.headers.get('retry-after'), '2');
    const second = await emu.fetch(tokenUrl, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) });
    assert.notEqual(second.status, 429, 'only the next request');
    assert.equal((await client.listFaults()).faults[0]!.hits, 1);

    assert.equal(await status(client.addFault({ target: 'graph', kind: 'throttle', share: 0.5, count: 2 })), 400);
    assert.equal(await status(client.addFault({ target: 'nowhere' as 'graph', kind: 'throttle' })), 400);
    const other = await client.addFault({ target: 'graph', kind: 'unavailable', share: 0.3 });
    await client.removeFault(fault.id);
    assert.deepEqual((await client.listFaults()).faults.map((f) => f.id), [other.id]);
    assert.equal(await status(client.removeFault(fault.id)), 404);
    assert.deepEqual(await client.clearFaults(), { removed: 1 });
    assert.deepEqual((await client.listFaults()).faults, []);
  });

  test('requests and stats count what was served, per route and tenant', async () => {
    await client.resetRequests();
    const [contoso, fabrikam] = [emu.ctx.directory.requireTenant('contoso.com'), emu.ctx.directory.requireTenant('fabrikam.com')];
    const since = Date.now();
    for (const tenant of [contoso, contoso, fabrikam]) {
      await emu.fetch(`${emu.urls.authority}/${tenant.id}/oauth2/v2.0/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) });
    }
    const all = await client.requests();
    assert.equal(all.count, 3);
    const forContoso = await client.requests({ tenant: 'contoso.com', sinceMs: since });
    assert.equal(forContoso.count, 2);
    assert.ok(forContoso.entries.every((e) => e.tenant === contoso.id && e.method === 'POST' && e.status !== undefined));
    assert.equal((await client.requests({ limit: 1 })).entries.length, 1);
    const stats = await client.stats();
    assert.equal(stats.total, 3);
    assert.equal(Object.values(stats.byRoute)[0], 3);
    await client.resetRequests();
    assert.equal((await client.stats()).total, 0);
  });

  test('clock and settings', async () => {
    const before = emu.ctx.clock.offsetSeconds;
    const moved = await client.advanceClock(3600);
    assert.equal(moved.offsetSeconds, before + 3600);
    assert.equal(emu.ctx.clock.offsetSeconds, before + 3600);
    const settings = await client.updateSettings({ consentPropagationSeconds: 5, missingServicePrincipalError: 7000229 });
    assert.equal(settings.consentPropagationSeconds, 5);
    assert.equal(emu.ctx.directory.missingServicePrincipalError, 7000229);
    await client.updateSettings({ consentPropagationSeconds: 0, missingServicePrincipalError: 700016 });
    await client.advanceClock(-3600);
  });

  test('save without a data folder says so', async () => {
    assert.equal(await status(client.save()), 409);
  });
});

describe('control API with a data folder', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'roster-control-'));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test('save writes state and keys that the next start restores', async () => {
    const first = await startTestEmulator({ dataDir, seed: { kind: 'generate', tenants: 1, usersPerTenant: 10, seed: 4 } });
    let kid: string;
    let userId: string;
    try {
      const client = new ControlClient(first.urls.control, first.ctx.controlToken);
      userId = (await client.addUser('contoso.com', { userPrincipalName: 'kept@contoso.com' })).id;
      kid = (await client.rotateKeys()).kid;
      const saved = await client.save();
      assert.equal(saved.saved, true);
      assert.equal((await stat(join(dataDir, 'state.json'))).mode & 0o777, 0o600);
      const keys = JSON.parse(await readFile(join(dataDir, 'signing-keys.json'), 'utf8')) as unknown[];
      assert.equal(keys.length, 3);
    } finally {
      await first.close();
    }
    // Another seed on restart: the saved state wins.
    const second = await startTestEmulator({ dataDir, seed: { kind: 'generate', tenants: 3, usersPerTenant: 5, seed: 99 } });
    try {
      assert.equal(second.ctx.directory.tenants.size, 1);
      const found = second.ctx.directory.findUserByUpn('kept@contoso.com');
      assert.equal(found?.user.props.id, userId);
      assert.equal(found!.tenant.changeLog.at(-1)!.userId, userId);
      assert.equal(second.ctx.keyring.currentKid, kid);
      assert.equal(second.demoApp.clientId, first.demoApp.clientId);
    } finally {
      await second.close();
    }
  });
});
