import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isGuid, type Directory, type Tenant } from '../../src/emulator/model.ts';
import { directoryWithDemoApp, DEMO_APP_ID } from '../helpers/fixtures.ts';
import { applySeed, FixtureError, type SeedSource } from '../../src/emulator/seed.ts';
import { asciiSlug } from '../../src/emulator/ascii.ts';

const DEMO_APP = DEMO_APP_ID;
const EXAMPLE_FIXTURE = new URL('../../docs/examples/emulator-fixture.json', import.meta.url).pathname;

const newDirectory = directoryWithDemoApp;

async function seeded(source: SeedSource): Promise<Directory> {
  const directory = newDirectory();
  await applySeed(directory, source, DEMO_APP);
  return directory;
}

const tenantsOf = (d: Directory): Tenant[] => [...d.tenants.values()];

describe('deterministic generator', () => {
  test('the same seed gives the same tenants and users, another seed other GUIDs', async () => {
    const a = await seeded({ kind: 'generate', tenants: 3, usersPerTenant: 200, seed: 7 });
    const b = await seeded({ kind: 'generate', tenants: 3, usersPerTenant: 200, seed: 7 });
    const c = await seeded({ kind: 'generate', tenants: 3, usersPerTenant: 200, seed: 8 });
    const shape = (d: Directory) =>
      tenantsOf(d).map((t) => ({ id: t.id, name: t.displayName, domains: t.domains, country: t.countryLetterCode, created: t.createdDateTime, users: t.users.map((u) => ({ ...u.props, password: u.password, admin: u.admin })) }));
    assert.deepEqual(shape(a), shape(b));
    assert.deepEqual(tenantsOf(a).map((t) => t.displayName), ['Contoso', 'Fabrikam', 'Northwind Traders']);
    assert.deepEqual(tenantsOf(c).map((t) => t.displayName), ['Contoso', 'Fabrikam', 'Northwind Traders']);
    assert.notDeepEqual(tenantsOf(a).map((t) => t.id), tenantsOf(c).map((t) => t.id));
    assert.notEqual(tenantsOf(a)[0]!.users[1]!.props.id, tenantsOf(c)[0]!.users[1]!.props.id);
  });

  test('adding tenants does not change the earlier ones', async () => {
    const two = await seeded({ kind: 'generate', tenants: 2, usersPerTenant: 20, seed: 3 });
    const five = await seeded({ kind: 'generate', tenants: 5, usersPerTenant: 20, seed: 3 });
    assert.deepEqual(tenantsOf(two).map((t) => t.users.map((u) => u.props.id)), tenantsOf(five).slice(0, 2).map((t) => t.users.map((u) => u.props.id)));
  });

  test('tenants and users look like a real directory', async () => {
    const d = await seeded({ kind: 'generate', tenants: 2, usersPerTenant: 3000, seed: 42, consentedTenants: 1, password: 'pw-123456' });
    const [contoso, fabrikam] = tenantsOf(d) as [Tenant, Tenant];
    assert.ok(isGuid(contoso.id));
    assert.deepEqual(contoso.domains, ['contoso.onmicrosoft.com', 'contoso.com']);
    assert.equal(contoso.defaultDomain, 'contoso.com');
    assert.match(contoso.countryLetterCode, /^[A-Z]{2}$/);
    assert.ok(contoso.servicePrincipals.has(DEMO_APP), 'the first tenant is consented');
    assert.deepEqual(contoso.servicePrincipals.get(DEMO_APP)!.appRoles, ['User.Read.All', 'GroupMember.Read.All']);
    assert.ok(contoso.servicePrincipals.get(DEMO_APP)!.readyAtMs <= Date.now());
    assert.equal(fabrikam.servicePrincipals.size, 0, 'the second is not');

    const users = contoso.users;
    assert.equal(users.length, 3000);
    assert.equal(users[0]!.props.userPrincipalName, 'admin@contoso.com');
    assert.equal(users[0]!.admin, true);
    assert.equal(users.filter((u) => u.admin).length, 1);
    assert.ok(users.every((u) => u.password === 'pw-123456'));
    assert.ok(users.every((u) => isGuid(u.props.id)));
    assert.equal(new Set(users.map((u) => u.props.userPrincipalName.toLowerCase())).size, users.length, 'UPNs are unique');
    assert.equal(new Set(users.map((u) => u.props.id)).size, users.length, 'ids are unique');

    const guests = users.filter((u) => u.props.userType === 'Guest');
    const disabled = users.filter((u) => !u.props.accountEnabled);
    assert.ok(guests.length > 30 && guests.length < 200, `a few guests (${guests.length})`);
    assert.ok(disabled.length > 20 && disabled.length < 150, `a few disabled (${disabled.length})`);
    for (const guest of guests) {
      assert.match(guest.props.userPrincipalName, /^[a-z0-9.]+_[a-z0-9.-]+#EXT#@contoso\.onmicrosoft\.com$/);
      assert.match(guest.props.mail!, /^[a-z0-9.]+@[a-z0-9.-]+$/);
    }
    const member = users.find((u) => u.props.userType === 'Member' && !u.admin)!;
    assert.match(member.props.userPrincipalName, /^[a-z]+\.[a-z]+\d*@contoso\.com$/);
    assert.equal(member.props.mail, member.props.userPrincipalName);
    assert.equal(member.props.displayName, `${member.props.givenName} ${member.props.surname}`);
    assert.equal(member.props.companyName, 'Contoso');
    for (const key of ['jobTitle', 'department', 'officeLocation', 'employeeId'] as const) assert.ok(member.props[key], `${key} is set`);
    assert.ok(users.some((u) => u.props.mobilePhone) && users.some((u) => u.props.businessPhones.length === 1));
    assert.ok(users.every((u) => !Number.isNaN(Date.parse(u.props.createdDateTime))));
    // Characters that need escaping in HTML appear in real directories.
    assert.ok(users.some((u) => u.props.displayName.includes("'")), 'an apostrophe in a name');
    assert.ok(users.some((u) => u.props.jobTitle?.includes('&') || u.props.department?.includes('&')), 'an ampersand in a title');
    // Every user is in the change log, so a first delta round returns them all.
    assert.equal(contoso.changeLog.length, 3000);
    assert.equal(contoso.seq, 3000);
  });

  test('numbered company names after the list runs out, with their own domains', async () => {
    const d = await seeded({ kind: 'generate', tenants: 22, usersPerTenant: 1, seed: 1 });
    const names = tenantsOf(d).map((t) => t.displayName);
    assert.equal(new Set(names).size, 22);
    assert.equal(names[20], 'Contoso 2');
    assert.deepEqual(tenantsOf(d)[20]!.domains, ['contoso2.onmicrosoft.com', 'contoso2.com']);
  });

  test('hardening 14: names with letters outside ASCII keep them, transliterated, in UPNs (Søren becomes soren, not sren)', async () => {
    const d = await seeded({ kind: 'generate', tenants: 1, usersPerTenant: 3000, seed: 5 });
    const members = tenantsOf(d)[0]!.users.filter((u) => u.props.userType === 'Member' && !u.admin);
    const expectations: [string, RegExp][] = [
      ['Søren', /^soren\./],
      ['Chloé', /^chloe\./],
      ['Zoë', /^zoe\./],
      ['Siobhán', /^siobhan\./],
    ];
    for (const [given, local] of expectations) {
      const user = members.find((u) => u.props.givenName === given);
      assert.ok(user, `a ${given} among 3000 users`);
      assert.match(user.props.userPrincipalName, local);
    }
    const muller = members.find((u) => u.props.surname === 'Müller');
    assert.match(muller!.props.userPrincipalName, /\.muller\d*@/);
    for (const user of members) assert.match(user.props.userPrincipalName, /^[a-z0-9.]+@[a-z0-9.-]+$/, user.props.displayName);
  });

  test('hardening 14: letters that do not decompose are spelled out', () => {
    assert.equal(asciiSlug('Søren Ærø'), 'sorenaero');
    assert.equal(asciiSlug('Straße'), 'strasse');
    assert.equal(asciiSlug('Łukasz Wałęsa'), 'lukaszwalesa');
    assert.equal(asciiSlug('Þórður Œuvre'), 'thorduroeuvre');
    assert.equal(asciiSlug("Zoë O'Brien-Müller"), 'zoeobrienmuller');
  });

  // How fast it builds is measured by bench/emulator.ts.
  test('a 1,000,000-user tenant is built whole', async () => {
    const directory = newDirectory();
    await applySeed(directory, { kind: 'generate', tenants: 1, usersPerTenant: 1_000_000, seed: 9 }, DEMO_APP);
    const tenant = tenantsOf(directory)[0]!;
    assert.equal(tenant.users.length, 1_000_000);
    assert.equal(tenant.usersById.size, 1_000_000);
  });
});

describe('demo seed', () => {
  test('Contoso and Northwind Traders consented, Fabrikam waiting to sign up', async () => {
    const a = await seeded({ kind: 'demo' });
    const b = await seeded({ kind: 'demo' });
    assert.deepEqual(
      tenantsOf(a).map((t) => [t.displayName, t.users.length, t.servicePrincipals.has(DEMO_APP)]),
      [
        ['Contoso', 300, true],
        ['Fabrikam', 60, false],
        ['Northwind Traders', 25_000, true],
      ],
    );
    assert.deepEqual(tenantsOf(a).map((t) => t.id), tenantsOf(b).map((t) => t.id));
    assert.deepEqual(tenantsOf(a).map((t) => t.users[0]!.props.userPrincipalName), ['admin@contoso.com', 'admin@fabrikam.com', 'admin@northwindtraders.com']);
  });
});

describe('fixtures', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'roster-seed-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fixtureFile(name: string, content: unknown): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  }

  async function fixtureError(path: string): Promise<string> {
    const err = await applySeed(newDirectory(), { kind: 'fixture', path }, DEMO_APP).then(
      () => assert.fail('the fixture was accepted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof FixtureError, String(err));
    return err.message;
  }

  test('the example fixture loads', async () => {
    const d = await seeded({ kind: 'fixture', path: EXAMPLE_FIXTURE });
    const [contoso, fabrikam] = tenantsOf(d) as [Tenant, Tenant];
    assert.equal(contoso.id, '6f1c3a52-8d0e-4b7a-9c21-3e5f0a9b7d14');
    assert.equal(contoso.users.length, 5);
    assert.ok(contoso.servicePrincipals.has(DEMO_APP));
    assert.equal(fabrikam.servicePrincipals.size, 0);
    assert.ok(isGuid(fabrikam.id));
    for (const tenant of [contoso, fabrikam]) assert.equal(tenant.users.filter((u) => u.admin).length, 1);
    assert.equal(d.findUserByUpn('admin@fabrikam.com')!.user.password, 'fabrikam-admin');
    assert.equal(d.findUserByUpn('adele.vance@contoso.com')!.user.props.id, '0f6a1d7e-2c4b-4e8a-b1d3-5a7c9e2f4b60');
    const guest = contoso.users.find((u) => u.props.userType === 'Guest')!;
    assert.equal(guest.props.mail, 'lidia.holloway@treyresearch.net');
    // Ids that the fixture leaves out are stable across loads.
    const again = await seeded({ kind: 'fixture', path: EXAMPLE_FIXTURE });
    assert.deepEqual(tenantsOf(again).map((t) => t.users.map((u) => u.props.id)), tenantsOf(d).map((t) => t.users.map((u) => u.props.id)));
  });

  test('fixture apps, secrets and consent to them', async () => {
    const appId = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
    const path = await fixtureFile('apps.json', {
      apps: [{ appId, displayName: 'Other', redirectUris: ['http://localhost:4000/cb'], secrets: [{ value: 'a-secret-of-some-length', expiresAt: '2020-01-01T00:00:00Z' }] }],
      tenants: [{ displayName: 'Solo', domains: ['solo.com'], consentedApps: [appId], users: [{ userPrincipalName: 'a@solo.com' }] }],
    });
    const d = await seeded({ kind: 'fixture', path });
    const app = d.requireApp(appId);
    assert.equal(app.secrets[0]!.value, 'a-secret-of-some-length');
    assert.equal(app.secrets[0]!.expiresAtMs, Date.parse('2020-01-01T00:00:00Z'));
    assert.ok(tenantsOf(d)[0]!.servicePrincipals.has(appId));
  });

  test('a missing file names the file', async () => {
    const message = await fixtureError(join(dir, 'nope.json'));
    assert.match(message, /nope\.json/);
    assert.match(message, /ENOENT/);
  });

  test('invalid JSON names the file', async () => {
    const path = await fixtureFile('broken.json', '{"tenants": [');
    assert.match(await fixtureError(path), /broken\.json: not valid JSON/);
  });

  test('a schema violation names the field path', async () => {
    const path = await fixtureFile('schema.json', {
      tenants: [{ displayName: 'X', domains: ['x.com'], users: [{ userPrincipalName: 'a@x.com' }, { userPrincipalName: 'a@x.com' }, { userPrincipalName: 'b@x.com' }, { userPrincipalName: 42 }] }],
    });
    assert.match(await fixtureError(path), /schema\.json tenants\[0\]\.users\[3\]\.userPrincipalName: /);
  });

  test('unknown fields are refused with their path', async () => {
    const path = await fixtureFile('unknown.json', { tenants: [{ displayName: 'X', domains: ['x.com'], users: [{ userPrincipalName: 'a@x.com', jobtitle: 'typo' }] }] });
    assert.match(await fixtureError(path), /tenants\[0\]\.users\[0\]: .*jobtitle/);
  });

  test('duplicate UPNs, duplicate domains and foreign UPN domains are refused with their path', async () => {
    const dupUpn = await fixtureFile('dup-upn.json', { tenants: [{ displayName: 'X', domains: ['x.com'], users: [{ userPrincipalName: 'a@x.com' }, { userPrincipalName: 'A@x.com' }] }] });
    assert.match(await fixtureError(dupUpn), /tenants\[0\]\.users\[1\]\.userPrincipalName: duplicate userPrincipalName/);
    const dupDomain = await fixtureFile('dup-domain.json', {
      tenants: [
        { displayName: 'X', domains: ['x.com'] },
        { displayName: 'Y', domains: ['y.com', 'X.com'] },
      ],
    });
    assert.match(await fixtureError(dupDomain), /tenants\[1\]\.domains\[1\]: duplicate domain X\.com/);
    const foreign = await fixtureFile('foreign.json', { tenants: [{ displayName: 'X', domains: ['x.com'], users: [{ userPrincipalName: 'a@y.com' }] }] });
    assert.match(await fixtureError(foreign), /tenants\[0\]\.users\[0\]\.userPrincipalName: a@y\.com does not end with one of the tenant's domains/);
  });
});
