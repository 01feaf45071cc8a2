import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Browser } from '../helpers/browser.ts';
import { rosterSettingsFor, startTestEmulator } from '../helpers/emulator.ts';
import { freePort, rosterRunner } from './spawn.ts';

let tmp: string;
const { spawnRoster, runRoster, killAll } = rosterRunner(() => tmp);

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'roster-cmd-'));
});
after(async () => {
  killAll();
  await rm(tmp, { recursive: true, force: true });
});

describe('roster demo', () => {
  test('serves Roster against the emulator with signed-up demo organisations, stops on SIGTERM and keeps its data', async () => {
    const dataDir = join(tmp, 'demo');
    const ports = { PORT: String(await freePort()), EMULATOR_HTTPS_PORT: String(await freePort()), EMULATOR_HTTP_PORT: String(await freePort()), DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
    const url = `http://localhost:${ports.PORT}`;
    const first = spawnRoster(['demo'], ports);
    await first.waitFor(/Stop with Ctrl\+C/);
    assert.match(first.out(), new RegExp(`Roster demo is running: open ${url}`));
    assert.match(first.out(), /Contoso\s+300 users\s+signed up/);
    assert.match(first.out(), /Fabrikam\s+60 users\s+not signed up/);
    assert.match(first.out(), /Northwind Traders\s+25000 users\s+signed up/);
    assert.match(first.out(), /admin:\s+admin@fabrikam\.com/);
    assert.doesNotMatch(first.err(), /METRICS_TOKEN/, 'the demo does not warn about its open /metrics');

    // Its emulator is found from a second terminal like a standalone one, and only by its owner.
    const control = join(dataDir, 'emulator', 'control.json');
    assert.equal((await stat(control)).mode & 0o777, 0o600);
    const state = await runRoster(['emulator', 'state', '--data-dir', join(dataDir, 'emulator')]);
    assert.equal(state.code, 0, state.stderr);
    assert.equal((JSON.parse(state.stdout) as { tenants: unknown[] }).tenants.length, 3);
    const rival = await runRoster(['demo'], { ...ports, PORT: String(await freePort()), EMULATOR_HTTPS_PORT: '0', EMULATOR_HTTP_PORT: '0' });
    assert.equal(rival.code, 1, 'a second demo on the same data folder is refused');
    assert.match(rival.stderr, /another emulator \(pid \d+\) is using .*emulator; stop it, or set another DATA_DIR/);

    const home = await new Browser().get(`${url}/`);
    assert.equal(home.status, 200);
    assert.match(home.html, /Sign up your organisation/);
    const signIn = await new Browser().get(`${url}/signin`);
    assert.equal(signIn.status, 303);
    assert.match(signIn.location!, new RegExp(`^http://localhost:${ports.EMULATOR_HTTP_PORT}/organizations/oauth2/v2.0/authorize`));

    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    assert.equal(existsSync(control), false, 'a clean stop removes control.json');

    // A control file left by a process that is gone does not stop the next start.
    await writeFile(control, JSON.stringify({ url: 'http://localhost:1/_emulator', token: 'stale-token', pid: 2 ** 22 + 1 }));
    const second = spawnRoster(['demo'], ports);
    await second.waitFor(/Stop with Ctrl\+C/);
    assert.match(second.out(), /Contoso\s+300 users\s+signed up/);
    assert.notEqual((JSON.parse(await readFile(control, 'utf8')) as { token: string }).token, 'stale-token');
    second.child.kill('SIGINT');
    assert.equal(await second.exited, 0);
  });
});

describe('roster migrate and doctor', () => {
  test('migrate applies the migrations once, then reports the database up to date', async () => {
    const DATA_DIR = join(tmp, 'migrate');
    const first = await runRoster(['migrate'], { DATA_DIR });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /Applied to .*roster\.db: 0001_tenants_users_sessions/);
    const second = await runRoster(['migrate'], { DATA_DIR });
    assert.match(second.stdout, /is up to date/);
  });

  test('doctor passes in demo mode and names each failing part', async () => {
    const DATA_DIR = join(tmp, 'doctor');
    await runRoster(['migrate'], { DATA_DIR });
    const healthy = await runRoster(['doctor'], { DATA_DIR });
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    assert.match(healthy.stdout, /ok\s+configuration: demo mode/);
    assert.match(healthy.stdout, /ok\s+database: sqlite/);

    const badDb = await runRoster(['doctor'], { DATABASE_URL: 'postgres://roster:secret@127.0.0.1:1/roster' });
    assert.equal(badDb.code, 1);
    assert.match(badDb.stdout, /FAIL\s+database: cannot connect to PostgreSQL at postgres:\/\/roster:\*\*\*@127\.0\.0\.1:1\/roster/);
    assert.doesNotMatch(badDb.stdout, /secret/);

    const badConfig = await runRoster(['doctor'], { PORT: 'eighty', ENTRA_CLIENT_ID: 'not-a-guid' });
    assert.equal(badConfig.code, 1);
    assert.match(badConfig.stdout, /FAIL\s+configuration: PORT: PORT must be a whole number/);
    assert.match(badConfig.stdout, /FAIL\s+configuration: ENTRA_CLIENT_ID: ENTRA_CLIENT_ID must be the application \(client\) id/);

    const noAuthority = await runRoster(['doctor'], { DATA_DIR, ENTRA_CLIENT_ID: '11111111-2222-4333-8444-555555555555', ENTRA_CLIENT_SECRET: 's', ENTRA_AUTHORITY_HOST: `https://localhost:${await freePort()}` });
    assert.equal(noAuthority.code, 1);
    assert.match(noAuthority.stdout, /FAIL\s+identity provider: the identity provider at https:\/\/localhost:\d+ did not answer/);
  });

  test('outbound calls trust NODE_EXTRA_CA_CERTS, so an Entra-compatible server with its own CA can stand in', async () => {
    const emulator = await startTestEmulator();
    try {
      const DATA_DIR = join(tmp, 'extra-ca');
      await runRoster(['migrate'], { DATA_DIR });
      const caFile = join(tmp, 'emulator-ca.pem');
      await writeFile(caFile, emulator.caCertPem);
      const settings = { DATA_DIR, ENTRA_CLIENT_ID: emulator.demoApp.clientId, ENTRA_CLIENT_SECRET: emulator.demoApp.clientSecret, ENTRA_AUTHORITY_HOST: emulator.urls.authority, GRAPH_BASE_URL: emulator.urls.graph };
      const untrusted = await runRoster(['doctor'], settings);
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stdout, /FAIL\s+identity provider/);
      const trusted = await runRoster(['doctor'], { ...settings, NODE_EXTRA_CA_CERTS: caFile });
      assert.equal(trusted.code, 0, trusted.stdout);
      assert.match(trusted.stdout, /ok\s+identity provider: discovery answered; issuer https:\/\/localhost:\d+\/\{tenantid\}\/v2\.0/);
    } finally {
      await emulator.close();
    }
  });

  test('serve refuses bad settings with exit 2 and an unreachable database with exit 1, each with a clear message', async () => {
    const badConfig = await runRoster(['serve'], { ENTRA_CLIENT_ID: '11111111-2222-4333-8444-555555555555' });
    assert.equal(badConfig.code, 2);
    assert.match(badConfig.stderr, /ENTRA_CLIENT_SECRET or ENTRA_CLIENT_CERTIFICATE is needed/);
    const badDb = await runRoster(['serve'], { DATABASE_URL: 'postgres://roster@127.0.0.1:1/roster', PORT: String(await freePort()), EMULATOR_HTTPS_PORT: '0', EMULATOR_HTTP_PORT: '0' });
    assert.equal(badDb.code, 1);
    assert.match(badDb.stderr, /cannot connect to PostgreSQL at postgres:\/\/roster@127\.0\.0\.1:1\/roster/);
  });
});

describe('roster serve', () => {
  test('hardening 12: warns at start-up that /metrics is open while METRICS_TOKEN is unset, says how to set it, and is quiet once it is set', async () => {
    const emulator = await startTestEmulator();
    try {
      const caFile = join(tmp, 'metrics-ca.pem');
      await writeFile(caFile, emulator.caCertPem);
      const settings = {
        DATA_DIR: join(tmp, 'metrics'),
        ...rosterSettingsFor(emulator, caFile),
        LOG_LEVEL: 'info',
      };
      const open = spawnRoster(['serve'], { ...settings, PORT: String(await freePort()) });
      await open.waitFor(/Roster is serving/, 60_000, 'stderr');
      const warning = open.err().split('\n').find((line) => line.includes('METRICS_TOKEN is not set'));
      assert.ok(warning, `no warning about /metrics in:\n${open.err()}`);
      assert.equal(JSON.parse(warning).level, 40, 'logged as a warning');
      assert.match(warning, /\/metrics answers anyone/);
      assert.match(warning, /Authorization: Bearer <token>/);
      open.child.kill('SIGTERM');
      assert.equal(await open.exited, 0);

      const closed = spawnRoster(['serve'], { ...settings, PORT: String(await freePort()), METRICS_TOKEN: 'a-token-of-at-least-16-characters' });
      await closed.waitFor(/Roster is serving/, 60_000, 'stderr');
      assert.doesNotMatch(closed.err(), /METRICS_TOKEN/);
      closed.child.kill('SIGTERM');
      assert.equal(await closed.exited, 0);
    } finally {
      await emulator.close();
    }
  });
});
