import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Clock } from '../../src/emulator/clock.ts';
import { GrantStore } from '../../src/emulator/grants.ts';
import { Directory, type UserRecord } from '../../src/emulator/model.ts';
import { loadState, saveState, StateFileError, STATE_VERSION } from '../../src/emulator/persistence.ts';
import { createRsaKeyWithCertificate, describeCertificate } from '../../src/emulator/pki.ts';
import { directoryWithDemoApp, DEMO_APP_ID } from '../helpers/fixtures.ts';
import { applySeed } from '../../src/emulator/seed.ts';

const DEMO_APP = DEMO_APP_ID;

const newDirectory = directoryWithDemoApp;

const plainUser = (u: UserRecord) => ({ props: u.props, password: u.password, admin: u.admin, ordinal: u.ordinal });

/** Everything a directory holds, as plain data. */
function snapshot(d: Directory) {
  return {
    consentPropagationSeconds: d.consentPropagationSeconds,
    missingServicePrincipalError: d.missingServicePrincipalError,
    apps: [...d.apps.entries()],
    domains: [...d.tenantsByDomain.entries()].map(([domain, t]) => [domain, t.id]),
    tenants: [...d.tenants.entries()].map(([key, t]) => ({
      key,
      id: t.id,
      displayName: t.displayName,
      domains: t.domains,
      defaultDomain: t.defaultDomain,
      countryLetterCode: t.countryLetterCode,
      createdDateTime: t.createdDateTime,
      users: t.users.map(plainUser),
      // The index's own order means nothing; what counts is that it points at the listed users.
      usersById: [...t.usersById.keys()].sort(),
      indexConsistent: t.users.every((u) => t.usersById.get(u.props.id) === u) && t.usersById.size === t.users.length,
      deletedUsers: [...t.deletedUsers.entries()].map(([id, u]) => [id, plainUser(u)]),
      purgedUserIds: [...t.purgedUserIds],
      nextOrdinal: t.nextOrdinal,
      changeLog: t.changeLog,
      seq: t.seq,
      deltaFloor: t.deltaFloor,
      servicePrincipals: [...t.servicePrincipals.entries()],
    })),
  };
}

describe('save and load', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'roster-persist-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('an empty folder holds no state', async () => {
    const empty = await mkdtemp(join(dir, 'empty-'));
    assert.equal(await loadState(empty, new Directory(new Clock())), false);
  });

  test('round trip keeps every field, the change log included', async () => {
    const d = newDirectory();
    await applySeed(d, { kind: 'generate', tenants: 2, usersPerTenant: 2500, seed: 5, consentedTenants: 1 }, DEMO_APP);
    const [a, b] = [...d.tenants.values()] as [NonNullable<ReturnType<typeof d.findTenant>>, NonNullable<ReturnType<typeof d.findTenant>>];
    d.consentPropagationSeconds = 30;
    d.missingServicePrincipalError = 7000229;
    const { certPem } = await createRsaKeyWithCertificate('client cert');
    const info = describeCertificate(certPem);
    d.requireApp(DEMO_APP).certificates.push({
      id: 'c1',
      x5t: info.x5t,
      x5tS256: info.x5tS256,
      publicKeyPem: info.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
      expiresAtMs: info.notAfter.getTime(),
    });
    d.requireApp(DEMO_APP).disabled = true;
    d.editUser(a, a.users[5]!.props.id, { jobTitle: "Head of R&D", displayName: "Zoë O'Brien <x>" });
    const soft = d.softDeleteUser(a, a.users[10]!.props.userPrincipalName);
    d.purgeUser(a, a.users[20]!.props.id);
    d.softDeleteUser(a, a.users[30]!.props.id);
    d.purgeUser(a, [...a.deletedUsers.keys()][1]!);
    d.addUser(a, { userPrincipalName: 'new.person@contoso.com', displayName: 'New Person', admin: true, password: 'p\u2028w"\n' });
    d.restoreUser(a, soft.props.id);
    d.softDeleteUser(b, b.users[1]!.props.id);
    d.editTenant(b.id, { displayName: 'Fabrikam Ltd', addDomains: ['fabrikam.co.uk'] });
    a.deltaFloor = 17;
    d.ensureServicePrincipal(b, d.requireApp(DEMO_APP));
    d.addTenant({ displayName: 'Empty', domains: ['empty.example'] });

    await saveState(dir, d);
    const loaded = new Directory(new Clock());
    assert.equal(await loadState(dir, loaded), true);
    assert.deepEqual(snapshot(loaded), snapshot(d));
    assert.ok(a.changeLog.some((e) => e.changed?.includes('jobTitle')), 'the log holds a partial change');

    // The loaded directory keeps working: edits continue the sequence.
    const la = loaded.requireTenant(a.id);
    loaded.editUser(la, 'new.person@contoso.com', { jobTitle: 'Lead' });
    assert.equal(la.seq, a.seq + 1);
    assert.equal(loaded.findUserByUpn('new.person@contoso.com')!.user.password, 'p\u2028w"\n');
  });

  test('the file is valid JSON with a version, private, and written atomically', async () => {
    const d = newDirectory();
    await applySeed(d, { kind: 'generate', tenants: 1, usersPerTenant: 10, seed: 1 }, DEMO_APP);
    await saveState(dir, d);
    const path = join(dir, 'state.json');
    const doc = JSON.parse(await readFile(path, 'utf8')) as { version: number; format: string; records: unknown[] };
    assert.equal(doc.version, STATE_VERSION);
    assert.equal(doc.format, 'roster-emulator-state');
    assert.ok(doc.records.length > 3);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp')), [], 'no temp file left behind');
  });

  test('a reformatted file still loads', async () => {
    const d = newDirectory();
    await applySeed(d, { kind: 'generate', tenants: 2, usersPerTenant: 30, seed: 2 }, DEMO_APP);
    const folder = await mkdtemp(join(dir, 'pretty-'));
    await saveState(folder, d);
    const path = join(folder, 'state.json');
    await writeFile(path, JSON.stringify(JSON.parse(await readFile(path, 'utf8')), null, 2));
    const loaded = new Directory(new Clock());
    await loadState(folder, loaded);
    assert.deepEqual(snapshot(loaded), snapshot(d));
  });

  test('an unknown version is refused with a clear message', async () => {
    const folder = await mkdtemp(join(dir, 'future-'));
    const d = newDirectory();
    await saveState(folder, d);
    const path = join(folder, 'state.json');
    await writeFile(path, (await readFile(path, 'utf8')).replace(`"version":${STATE_VERSION},`, '"version":99,'));
    await assert.rejects(loadState(folder, new Directory(new Clock())), (err: unknown) => {
      assert.ok(err instanceof StateFileError);
      assert.match(err.message, /state\.json has format version 99, but this emulator reads version 1/);
      return true;
    });
  });

  test('unexpired codes and refresh tokens round-trip; expired ones are left behind; a malformed one is refused', async () => {
    const folder = await mkdtemp(join(dir, 'grants-'));
    const d = newDirectory();
    const now = d.clock.nowMs();
    const grants = new GrantStore();
    const signedIn = { tenantId: 't', userId: 'u', sid: 's', clientId: DEMO_APP, scopes: ['openid', 'offline_access'] };
    const code = { ...signedIn, redirectUri: 'http://localhost:3000/auth/callback', pathTenant: 'organizations', nonce: 'n', codeChallenge: undefined, codeChallengeMethod: undefined, redeemed: false };
    grants.codes.set('live-code', { ...code, expiresAtMs: now + 600_000 });
    grants.codes.set('old-code', { ...code, expiresAtMs: now - 1 });
    grants.refreshTokens.set('live-rt', { ...signedIn, expiresAtMs: now + 86_400_000 });
    grants.refreshTokens.set('old-rt', { ...signedIn, expiresAtMs: now - 1 });
    await saveState(folder, d, grants);
    const restored = new GrantStore();
    await loadState(folder, new Directory(new Clock()), restored);
    assert.deepEqual([...restored.codes], [['live-code', grants.codes.get('live-code')]]);
    assert.deepEqual([...restored.refreshTokens], [['live-rt', grants.refreshTokens.get('live-rt')]]);

    const path = join(folder, 'state.json');
    await writeFile(path, (await readFile(path, 'utf8')).replace('"redeemed":false', '"redeemed":"no"'));
    await assert.rejects(loadState(folder, new Directory(new Clock()), new GrantStore()), /line \d+: redeemed: /);
  });

  test('a truncated file is refused, not half loaded', async () => {
    const folder = await mkdtemp(join(dir, 'cut-'));
    const d = newDirectory();
    await applySeed(d, { kind: 'generate', tenants: 1, usersPerTenant: 3000, seed: 2 }, DEMO_APP);
    await saveState(folder, d);
    const path = join(folder, 'state.json');
    const lines = (await readFile(path, 'utf8')).split('\n');
    await writeFile(path, lines.slice(0, lines.length - 4).join('\n'));
    await assert.rejects(loadState(folder, new Directory(new Clock())), /incomplete/);
  });

  // How fast they save and load is measured by bench/emulator.ts.
  test('100,000 users save and load intact', async () => {
    const folder = await mkdtemp(join(dir, 'big-'));
    const d = newDirectory();
    await applySeed(d, { kind: 'generate', tenants: 1, usersPerTenant: 100_000, seed: 3, consentedTenants: 1 }, DEMO_APP);
    await saveState(folder, d);
    const loaded = new Directory(new Clock());
    await loadState(folder, loaded);
    const tenant = [...loaded.tenants.values()][0]!;
    assert.equal(tenant.users.length, 100_000);
    assert.equal(tenant.changeLog.length, 100_000);
    assert.deepEqual(plainUser(tenant.users[99_999]!), plainUser([...d.tenants.values()][0]!.users[99_999]!));
  });
});
