import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseEnv } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { bootstrap, identityProviderFromConfig, type Roster } from '../../src/commands/bootstrap.ts';
import { startWebServer, type WebServer } from '../../src/commands/serve.ts';
import { environmentWithDotEnv, loadConfig } from '../../src/config/config.ts';
import { newRegistration } from '../../src/emulator/app-registrations.ts';
import { describeCertificate } from '../../src/emulator/pki.ts';
import { generateAppCertificate } from '../../src/identity/certificate.ts';
import type { AppRegistration } from '../../src/emulator/model.ts';
import { createLogger } from '../../src/web/logger.ts';
import { Browser } from '../helpers/browser.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { assertMirrors } from '../helpers/mirror.ts';
import type { TestRoster } from '../helpers/roster.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';
import { signIn, signUp } from '../web/flows.ts';
import { approveDeviceCode } from './device-login.ts';
import { freePort, rosterRunner } from './spawn.ts';

let tmp = '';
const { spawnRoster, killAll } = rosterRunner(() => tmp);

describe('roster setup against the emulator', () => {
  let emulator: TestEmulator;
  let vendor: Org;
  let caFile: string;
  let baseEnv: Record<string, string>;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'roster-setup-'));
    emulator = await startTestEmulator({ deviceCodeIntervalSeconds: 1 });
    vendor = addOrg(emulator.ctx, 'Vendor', 'vendor.example');
    caFile = join(tmp, 'emulator-ca.pem');
    await writeFile(caFile, emulator.caCertPem);
    baseEnv = { ENTRA_AUTHORITY_HOST: emulator.urls.authority, GRAPH_BASE_URL: emulator.urls.graph, NODE_EXTRA_CA_CERTS: caFile, LOG_LEVEL: 'warn' };
  });
  after(async () => {
    killAll();
    await emulator.close();
    await rm(tmp, { recursive: true, force: true });
  });

  /** Runs `roster setup` in `dir`, signing in on the device page as `username`. */
  async function setup(dir: string, args: string[], username: string, env: Record<string, string> = {}) {
    tmp = dir;
    const run = spawnRoster(['setup', ...args], { ...baseEnv, ...env });
    const page = await approveDeviceCode(emulator, run, username);
    assert.match(page, /You have signed in/);
    const code = await run.exited;
    return { code, stdout: run.out(), stderr: run.err() };
  }

  const dotEnv = (dir: string) => parseEnv(readFileSync(join(dir, '.env'), 'utf8')) as Record<string, string>;
  const registrationOf = (dir: string): AppRegistration => emulator.ctx.directory.requireApp(dotEnv(dir).ENTRA_CLIENT_ID!);
  const statuses = (stdout: string) => [...stdout.matchAll(/^ {2}(\w+)\s{2,}(.+?)\s{2,}/gm)].map((m) => `${m[1]} ${m[2]!.trim()}`);

  it('creates the registration from nothing, changes nothing the second time, only the redirect URIs when PUBLIC_URL moves; rotation keeps Roster signing in and syncing (rules 28, 29)', async () => {
    const dir = await mkdtemp(join(tmp, 'vendor-'));
    const port = await freePort();
    const first = await setup(dir, [], vendor.admin.props.userPrincipalName, { PUBLIC_URL: `http://localhost:${port}` });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /To sign in, use a web browser to open the page http:\/\/localhost:\d+\/devicelogin and enter the code/);
    assert.match(first.stdout, /Signed in as admin@vendor\.example/);
    assert.ok(statuses(first.stdout).includes('created app registration'));
    assert.ok(statuses(first.stdout).includes('created certificate'));
    assert.ok(statuses(first.stdout).includes('created service principal'));
    assert.match(first.stdout, new RegExp(`/${vendor.tenant.id}/v2\\.0/adminconsent\\?client_id=`));

    const env = dotEnv(dir);
    assert.equal(env.ENTRA_CLIENT_CERTIFICATE, join('data', 'entra-app.pem'));
    assert.equal(env.PUBLIC_URL, `http://localhost:${port}`);
    assert.equal(statSync(join(dir, 'data', 'entra-app.pem')).mode & 0o777, 0o600, 'private key readable by its owner only');
    assert.equal(statSync(join(dir, '.env')).mode & 0o777, 0o600);
    const app = registrationOf(dir);
    assert.equal(app.homeTenantId, vendor.tenant.id);
    assert.equal(app.signInAudience, 'AzureADMultipleOrgs');
    assert.deepEqual(app.redirectUris, [`http://localhost:${port}/auth/callback`, `http://localhost:${port}/signup/callback`, `http://localhost:${port}/`]);
    assert.deepEqual(app.requiredAppRoles, ['User.Read.All', 'GroupMember.Read.All']);
    assert.equal(app.groupMembershipClaims, 'DirectoryRole');
    assert.deepEqual(app.optionalClaims?.idToken.map((c) => c.name), ['login_hint']);
    assert.equal(app.certificates.length, 1);
    assert.equal(app.secrets.length, 0);
    assert.ok(vendor.tenant.servicePrincipals.has(app.appId));
    assert.doesNotMatch(first.stdout + first.stderr, /PRIVATE KEY/, 'rule 28: the key never reaches the terminal');

    const again = await setup(dir, [], vendor.admin.props.userPrincipalName);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Nothing changed/);
    assert.deepEqual(statuses(again.stdout).filter((s) => !s.startsWith('unchanged')), []);

    const moved = await freePort();
    await writeFile(join(dir, '.env'), readFileSync(join(dir, '.env'), 'utf8').replace(`PUBLIC_URL=http://localhost:${port}`, `PUBLIC_URL=http://localhost:${moved}`));
    const before = structuredClone({ ...app, certificates: app.certificates, secrets: app.secrets });
    const third = await setup(dir, [], vendor.admin.props.userPrincipalName);
    assert.equal(third.code, 0, third.stderr);
    assert.deepEqual(statuses(third.stdout).filter((s) => !s.startsWith('unchanged')), ['updated redirect URIs']);
    assert.deepEqual(app.redirectUris, [`http://localhost:${moved}/auth/callback`, `http://localhost:${moved}/signup/callback`, `http://localhost:${moved}/`]);
    assert.deepEqual({ ...app, redirectUris: before.redirectUris, postLogoutRedirectUris: before.postLogoutRedirectUris }, before, 'nothing else changed');

    // Roster with the written settings: signs the vendor's own organisation up, signs in and syncs.
    const roster = await startRosterFrom(dir, moved);
    try {
      const done = await signUp(new Browser(), roster.asTest, vendor);
      assert.equal(done.status, 200, done.html);
      const check = async (label: string) => {
        const { final } = await signIn(new Browser(), roster.asTest, vendor.member.props.userPrincipalName);
        assert.equal(final.status, 200, `${label}: sign-in ${final.html.slice(0, 300)}`);
        emulator.ctx.directory.addUser(vendor.tenant, { displayName: `Joined ${label}`, userPrincipalName: `${label}@vendor.example` });
        const outcome = await roster.roster.scheduler.syncNow(vendor.tenant.id);
        assert.ok(outcome, `${label}: a sync ran`);
        await assertMirrors(roster.db.store, vendor.tenant);
      };
      await check('before-rotation');

      const pemBefore = readFileSync(join(dir, 'data', 'entra-app.pem'), 'utf8');
      const rotated = await setup(dir, ['--rotate-credential'], vendor.admin.props.userPrincipalName);
      assert.equal(rotated.code, 0, rotated.stderr);
      assert.ok(statuses(rotated.stdout).includes('rotated certificate'));
      assert.equal(app.certificates.length, 2, 'old and new certificates are both valid');
      assert.notEqual(readFileSync(join(dir, 'data', 'entra-app.pem'), 'utf8'), pemBefore);
      assert.equal(readFileSync(join(dir, 'data', 'entra-app.previous.pem'), 'utf8'), pemBefore, 'the old pair is kept until --drop-old');
      await check('after-rotation');

      const dropped = await setup(dir, ['--drop-old'], vendor.admin.props.userPrincipalName);
      assert.equal(dropped.code, 0, dropped.stderr);
      assert.ok(statuses(dropped.stdout).includes('removed old certificate'));
      assert.equal(app.certificates.length, 1);
      assert.ok(!existsSync(join(dir, 'data', 'entra-app.previous.pem')));
      // The running Roster still holds the dropped certificate: refused once, it reads the file again.
      await check('after-drop');

      // Rule 28: through the whole journey, no key, certificate or token reached the logs.
      const logged = roster.logs.join('');
      assert.ok(logged.length > 0, 'the journey was logged');
      const keyBody = (pem: string) => /-----BEGIN PRIVATE KEY-----\n([^\n]+)/.exec(pem)![1]!;
      for (const pem of [pemBefore, readFileSync(join(dir, 'data', 'entra-app.pem'), 'utf8')]) assert.ok(!logged.includes(keyBody(pem)), 'private key in the logs');
      assert.doesNotMatch(logged, /PRIVATE KEY|eyJ[\w-]{20,}\.eyJ/, 'no key or JWT in the logs');
    } finally {
      await roster.close();
    }
  });

  it('refuses a vendor account without the rights, and changes nothing', async () => {
    const dir = await mkdtemp(join(tmp, 'member-'));
    const apps = emulator.ctx.directory.apps.size;
    const result = await setup(dir, [], vendor.member.props.userPrincipalName, { PUBLIC_URL: 'http://localhost:3999' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /user@vendor\.example may not create or change app registrations in tenant .* Sign in with a Global Administrator, Application Administrator or Cloud Application Administrator/);
    assert.equal(emulator.ctx.directory.apps.size, apps);
    assert.ok(!existsSync(join(dir, '.env')));
    assert.ok(!existsSync(join(dir, 'data', 'entra-app.pem')));
  });

  it("refuses an ENTRA_CLIENT_ID that is not a registration of the signed-in administrator's tenant", async () => {
    const dir = await mkdtemp(join(tmp, 'foreign-'));
    const result = await setup(dir, [], vendor.admin.props.userPrincipalName, { PUBLIC_URL: 'http://localhost:3998', ENTRA_CLIENT_ID: emulator.demoApp.clientId });
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`ENTRA_CLIENT_ID ${emulator.demoApp.clientId} is not an app registration of tenant ${vendor.tenant.id}: sign in to the tenant that owns it`));
    assert.ok(!existsSync(join(dir, '.env')));
  });

  it('never overwrites a different .env value without --force, and says what it skipped', async () => {
    const dir = await mkdtemp(join(tmp, 'keep-'));
    await writeFile(join(dir, '.env'), '# mine\nPUBLIC_URL=http://localhost:1111\n');
    const kept = await setup(dir, ['--secret'], vendor.admin.props.userPrincipalName, { PUBLIC_URL: 'http://localhost:2222' });
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stdout, /skipped\s+\.env PUBLIC_URL\s+keeps its own value .* --force replaces it/);
    assert.match(kept.stdout, /were left as they are/);
    const env = dotEnv(dir);
    assert.equal(env.PUBLIC_URL, 'http://localhost:1111');
    assert.ok(env.ENTRA_CLIENT_SECRET, 'the new secret is written (nothing held it before)');
    assert.doesNotMatch(kept.stdout + kept.stderr, new RegExp(env.ENTRA_CLIENT_SECRET!.replace(/[.*+?^${}()|[\]\\~]/g, '\\$&')), 'rule 28: the secret is not printed');
    assert.match(readFileSync(join(dir, '.env'), 'utf8'), /^# mine$/m, 'the file keeps its own lines');

    const forced = await setup(dir, ['--secret', '--force'], vendor.admin.props.userPrincipalName, { PUBLIC_URL: 'http://localhost:2222' });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /replaced\s+\.env PUBLIC_URL/);
    assert.equal(dotEnv(dir).PUBLIC_URL, 'http://localhost:2222');
    assert.equal(dotEnv(dir).ENTRA_CLIENT_SECRET, env.ENTRA_CLIENT_SECRET, 'the secret on the registration is kept');
  });

  it('checks its input before signing anyone in', async () => {
    tmp = await mkdtemp(join(tmp, 'input-'));
    const both = spawnRoster(['setup', '--rotate-credential', '--drop-old'], { ...baseEnv, PUBLIC_URL: 'http://localhost:3000', ENTRA_CLIENT_ID: emulator.demoApp.clientId });
    assert.equal(await both.exited, 2);
    assert.match(both.err(), /two steps/);
    const noUrl = spawnRoster(['setup'], baseEnv);
    assert.equal(await noUrl.exited, 2);
    assert.match(noUrl.err(), /PUBLIC_URL is needed/);
    const plainHttp = spawnRoster(['setup'], { ...baseEnv, PUBLIC_URL: 'http://roster.example.com' });
    assert.equal(await plainHttp.exited, 2);
    assert.match(plainHttp.err(), /PUBLIC_URL must use https/);
  });

  it('roster doctor --registration reports each broken piece of a registration with its fix', async () => {
    const dir = await mkdtemp(join(tmp, 'doctor-'));
    const configured = await generateAppCertificate('configured');
    const other = await generateAppCertificate('on the app');
    await writeFile(join(dir, 'app.pem'), configured, { mode: 0o600 });
    const soon = Date.now() + 10 * 86_400_000;
    const onApp = describeCertificate(other);
    const broken = emulator.ctx.directory.addApp(
      newRegistration({
        appId: randomUUID(),
        displayName: 'Broken Roster',
        homeTenantId: vendor.tenant.id,
        signInAudience: 'AzureADMyOrg',
        redirectUris: ['http://localhost:4100/auth/callback'],
        requiredAppRoles: ['User.Read.All'],
        secrets: [{ id: randomUUID(), value: 'abc-secret-value', expiresAtMs: soon }],
        certificates: [{ id: randomUUID(), x5t: onApp.x5t, x5tS256: onApp.x5tS256, publicKeyPem: onApp.publicKey.export({ type: 'spki', format: 'pem' }).toString(), expiresAtMs: Date.now() - 86_400_000 }],
      }),
    );
    await writeFile(join(dir, '.env'), `PUBLIC_URL=http://localhost:4100\nENTRA_CLIENT_ID=${broken.appId}\nENTRA_CLIENT_CERTIFICATE=app.pem\n`);
    tmp = dir;
    assert.equal(await spawnRoster(['migrate'], baseEnv).exited, 0);
    const run = spawnRoster(['doctor', '--registration'], baseEnv);
    assert.match(await approveDeviceCode(emulator, run, vendor.member.props.userPrincipalName), /You have signed in/);
    assert.equal(await run.exited, 1, run.err());
    const out = run.out();
    assert.match(out, /FAIL\s+app registration sign-in audience: is AzureADMyOrg.*\n\s+fix: .*AzureADMultipleOrgs/);
    assert.match(out, /FAIL\s+app registration redirect URIs: http:\/\/localhost:4100\/signup\/callback is missing.*\n\s+fix: .*add redirect URI http:\/\/localhost:4100\/signup\/callback/);
    assert.doesNotMatch(out, /auth\/callback is missing/);
    assert.match(out, /FAIL\s+app registration permissions: Microsoft Graph application permission GroupMember\.Read\.All is not requested\n\s+fix: .*98830695-27a2-44f7-8c18-0c3ebc9698f6/);
    assert.doesNotMatch(out, /User\.Read\.All is not requested/);
    assert.match(out, /FAIL\s+app registration claims: groupMembershipClaims is None: ID tokens carry no wids.*\n\s+fix: .*Directory roles/);
    assert.match(out, /FAIL\s+app registration claims: optional ID token claim login_hint is missing/);
    assert.match(out, /FAIL\s+app registration credentials: secret .* expires on .*\n\s+fix: run roster setup --rotate-credential/);
    assert.match(out, /FAIL\s+app registration credentials: certificate .* has expired/);
    assert.match(out, /FAIL\s+app registration credentials: the certificate in ENTRA_CLIENT_CERTIFICATE .* is not on the registration/);
    assert.doesNotMatch(out, /abc-secret-value/, 'rule 28');

    // Mended as doctor said, the same registration passes.
    broken.signInAudience = 'AzureADMultipleOrgs';
    broken.redirectUris.push('http://localhost:4100/signup/callback', 'http://localhost:4100/');
    broken.requiredAppRoles.push('GroupMember.Read.All');
    broken.groupMembershipClaims = 'DirectoryRole';
    broken.optionalClaims = { idToken: [{ name: 'login_hint' }], accessToken: [], saml2Token: [] };
    broken.secrets = [];
    const mine = describeCertificate(configured);
    broken.certificates = [{ id: randomUUID(), x5t: mine.x5t, x5tS256: mine.x5tS256, publicKeyPem: mine.publicKey.export({ type: 'spki', format: 'pem' }).toString(), expiresAtMs: mine.notAfter.getTime() }];
    const healthy = spawnRoster(['doctor', '--registration'], baseEnv);
    await approveDeviceCode(emulator, healthy, vendor.admin.props.userPrincipalName);
    assert.equal(await healthy.exited, 0, healthy.out());
    assert.match(healthy.out(), /ok\s+app registration: Broken Roster .* as Roster needs them/);
    assert.match(healthy.out(), /ok\s+certificate: .*app\.pem, valid until/);
  });

  /** Roster's web app and sync in this process, configured only by the folder's `.env` (as `roster serve` would be). */
  async function startRosterFrom(dir: string, port: number): Promise<{ roster: Roster; db: TestStore; asTest: TestRoster; logs: string[]; close(): Promise<void> }> {
    const logs: string[] = [];
    const config = { ...loadConfig(environmentWithDotEnv({ PORT: String(port) }, dir), dir) };
    const provider = { ...(await identityProviderFromConfig(config)), trustedCaPem: emulator.caCertPem };
    const db = await openTestStore('sqlite');
    const sink = new Writable({
      write: (chunk, _encoding, callback) => {
        logs.push(String(chunk));
        callback();
      },
    });
    const roster = await bootstrap(config, { provider, logger: createLogger('debug', sink), store: db.store, jobs: 'on-demand', consentGraceMs: 0 });
    const server: WebServer = await startWebServer(roster);
    const url = `http://localhost:${port}`;
    return {
      roster,
      db,
      logs,
      asTest: { url, emulator } as unknown as TestRoster,
      close: async () => {
        await server.close();
        await db.drop();
      },
    };
  }
});
