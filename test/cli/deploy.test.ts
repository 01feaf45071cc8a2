import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parse } from 'yaml';
import { helpText } from '../../src/commands/roster.ts';
import { openStore } from '../../src/store/database.ts';
import { Browser } from '../helpers/browser.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg } from '../helpers/fixtures.ts';
import { assertMirrors } from '../helpers/mirror.ts';
import type { TestRoster } from '../helpers/roster.ts';
import { TEST_POSTGRES_ADMIN_URL } from '../helpers/stores.ts';
import { signIn, signUp } from '../web/flows.ts';
import { approveDeviceCode } from './device-login.ts';
import { freePort, rosterRunner } from './spawn.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const COMMANDS = new Set([...helpText().matchAll(/^ {2}(\w+)\s/gm)].map((m) => m[1]!));
const CONFIG_SOURCE = read('src/config/config.ts');

interface ComposeService {
  build?: string;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  env_file?: string;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
}

describe('Dockerfile and compose.yaml (linted: no image registry is reachable here, so nothing is built)', () => {
  const compose = parse(read('compose.yaml'), { merge: true }) as { services: Record<string, ComposeService> };
  const dockerfile = read('Dockerfile');
  const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; engines: { node: string } };

  it('compose runs PostgreSQL, a migration, serve behind the proxy and workers, each a real roster command', () => {
    const { services } = compose;
    assert.deepEqual(Object.keys(services).sort(), ['migrate', 'postgres', 'serve', 'worker']);
    assert.match(services.postgres!.image!, /^postgres:\d+/);
    for (const name of ['migrate', 'serve', 'worker']) {
      const service = services[name]!;
      assert.equal(service.build, '.', `${name} is built from the Dockerfile`);
      assert.deepEqual(service.command, [name]);
      assert.ok(COMMANDS.has(service.command![0]!), `roster ${name} exists`);
      assert.equal(service.env_file, '.env', `${name} reads the settings roster setup wrote`);
      assert.match(service.environment!.DATABASE_URL!, /^postgres:\/\/roster:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432\/roster$/);
      assert.ok(service.volumes!.includes('./data:/app/data:ro'), `${name} sees the certificate folder (a folder, so a rotation's rename reaches it)`);
      for (const variable of Object.keys(service.environment!)) assert.ok(CONFIG_SOURCE.includes(`${variable}:`), `${variable} is one of Roster's settings`);
    }
    assert.equal(services.migrate!.depends_on!.postgres!.condition, 'service_healthy');
    for (const name of ['serve', 'worker']) assert.equal(services[name]!.depends_on!.migrate!.condition, 'service_completed_successfully');
    assert.equal(services.serve!.environment!.HOST, '0.0.0.0');
    assert.equal(services.serve!.environment!.TRUST_PROXY, '1');
    assert.deepEqual(services.serve!.ports, ['127.0.0.1:3000:3000'], 'only the local TLS proxy reaches Roster');
    assert.equal(services.worker!.ports, undefined);
    assert.ok((services.worker!.deploy?.replicas ?? 1) >= 2, 'more than one worker shares the queue');
  });

  it('the Dockerfile: Node 24, production dependencies without install scripts, non-root, the roster entry point', () => {
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]!);
    assert.ok(froms.length > 0 && froms.every((image) => /^node:24(-|$)/.test(image)), `every stage is Node 24: ${froms.join(', ')}`);
    assert.match(dockerfile, /^RUN npm ci --omit=dev --ignore-scripts/m, 'no dev dependencies, nothing compiled');
    assert.doesNotMatch(dockerfile, /build-essential|node-gyp|python3|apt-get/, 'no toolchain for native addons');
    const user = [...dockerfile.matchAll(/^USER (\S+)/gm)].map((m) => m[1]!).at(-1);
    assert.ok(user && user !== 'root' && user !== '0', 'the final stage runs as a non-root user');
    const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(dockerfile)![1]!) as string[];
    assert.deepEqual(entrypoint, ['node', pkg.bin.roster]);
    assert.ok(COMMANDS.has((JSON.parse(/^CMD (.+)$/m.exec(dockerfile)![1]!) as string[])[0]!));
    for (const copied of [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '))) {
      assert.ok(existsSync(join(ROOT, copied)), `COPY ${copied} exists in the repository`);
    }
    assert.match(pkg.engines.node, />=24/);
    const ignored = read('.dockerignore').split('\n');
    for (const secret of ['.env', 'data']) assert.ok(ignored.includes(secret), `${secret} never goes into the image`);
  });

  it('docs/deploy.md names only commands and settings that exist', () => {
    const doc = read('docs/deploy.md');
    for (const [, command] of doc.matchAll(/roster -- (\w+)/g)) assert.ok(COMMANDS.has(command!), `roster ${command}`);
    for (const [, variable] of doc.matchAll(/`([A-Z][A-Z_]{3,})`/g)) {
      if (['PUBLIC_URL', 'DATABASE_URL'].includes(variable!) || variable!.startsWith('POSTGRES')) continue;
      assert.ok(CONFIG_SOURCE.includes(`${variable}:`) || variable === 'ENTRA_CLIENT_CERTIFICATE', `setting ${variable}`);
    }
    for (const flag of ['--rotate-credential', '--drop-old', '--secret', '--force', '--registration']) assert.ok(doc.includes(flag));
  });
});

describe("docs/deploy.md's steps against the emulator: setup, migrate, serve and a worker on PostgreSQL, sign in", () => {
  let emulator: TestEmulator;
  let tmp = '';
  let database = '';
  const { spawnRoster, killAll } = rosterRunner(() => tmp);
  const name = `roster_deploy_${process.pid}`;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'roster-deploy-'));
    emulator = await startTestEmulator({ deviceCodeIntervalSeconds: 1 });
    const admin = new pg.Client({ connectionString: TEST_POSTGRES_ADMIN_URL });
    await admin.connect();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}`);
    await admin.end();
    const url = new URL(TEST_POSTGRES_ADMIN_URL);
    url.pathname = `/${name}`;
    database = url.href;
  });
  after(async () => {
    killAll();
    await emulator.close();
    const admin = new pg.Client({ connectionString: TEST_POSTGRES_ADMIN_URL });
    await admin.connect();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
    await rm(tmp, { recursive: true, force: true });
  });

  it('a newcomer ends with a running Roster that signs people in and syncs', async () => {
    const org = addOrg(emulator.ctx, 'Deployco', 'deployco.example');
    const caFile = join(tmp, 'ca.pem');
    await writeFile(caFile, emulator.caCertPem);
    const port = await freePort();
    const env = { ENTRA_AUTHORITY_HOST: emulator.urls.authority, GRAPH_BASE_URL: emulator.urls.graph, NODE_EXTRA_CA_CERTS: caFile, LOG_LEVEL: 'warn' };

    const setup = spawnRoster(['setup'], { ...env, PUBLIC_URL: `http://localhost:${port}` });
    await approveDeviceCode(emulator, setup, org.admin.props.userPrincipalName);
    assert.equal(await setup.exited, 0, setup.err());

    const migrate = spawnRoster(['migrate'], { ...env, DATABASE_URL: database });
    assert.equal(await migrate.exited, 0, migrate.err());

    const running = { ...env, DATABASE_URL: database, PORT: String(port), SYNC_TICK_SECONDS: '1' };
    const serve = spawnRoster(['serve'], running);
    const worker = spawnRoster(['worker'], running);
    try {
      const url = `http://localhost:${port}`;
      for (let i = 0; i < 200; i++) {
        const ready = await fetch(`${url}/readyz`).catch(() => null);
        if (ready?.ok) break;
        assert.equal(serve.child.exitCode, null, serve.err());
        await new Promise((r) => setTimeout(r, 100));
      }
      const roster = { url, emulator } as unknown as TestRoster;
      const done = await signUp(new Browser(), roster, org);
      assert.equal(done.status, 200, done.html);
      const { final } = await signIn(new Browser(), roster, org.member.props.userPrincipalName);
      assert.equal(final.status, 200, final.html.slice(0, 300));
      const store = await openStore({ engine: 'postgres', url: database });
      try {
        // The worker (or serve) syncs the new tenant; people who signed in are known before the sync completes them.
        for (let i = 0; ; i++) {
          const synced = await store.db.selectFrom('sync_runs').select('id').where('tenant_id', '=', org.tenant.id).where('status', '=', 'succeeded').execute();
          if (synced.length > 0 || i > 300) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        await assertMirrors(store, org.tenant);
      } finally {
        await store.close();
      }
    } finally {
      serve.child.kill('SIGTERM');
      worker.child.kill('SIGTERM');
      await Promise.all([serve.exited, worker.exited]);
    }
  });
});
