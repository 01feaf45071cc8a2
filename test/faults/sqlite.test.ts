import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { assertMirrors } from '../helpers/mirror.ts';
import { assertCleanLog, get, makeEveryTenantDue, spawnServe, startFaultRig, waitForRound, waitUntil, type FaultRig, type RosterProcess } from './rig.ts';

/** `roster serve` on SQLite when its database file cannot be written for a while. */
describe('roster serve on SQLite when the database file is locked', () => {
  let rig: FaultRig<null>;
  let serve: RosterProcess;
  let url: string;
  const logs = () => serve.output().slice(-3000);

  before(async () => {
    rig = await startFaultRig({ engine: 'sqlite', users: [400], env: { SYNC_TICK_SECONDS: '1', SYNC_INTERVAL_MINUTES: '60' } });
    ({ serve, url } = await spawnServe(rig));
    await waitForRound(rig, 0, logs);
  });
  after(async () => {
    await serve?.stop();
    await rig?.close();
  });

  it('another process holding the write lock: writes wait, then answer 503 in words; nothing crashes, and the next sync is exact', async () => {
    const [tenant] = rig.tenants;
    rig.emulator.ctx.directory.addUser(tenant!, { userPrincipalName: `locked@${tenant!.defaultDomain}`, displayName: 'Locked Out' });
    const since = await makeEveryTenantDue(rig);
    const holder = new DatabaseSync(rig.db.target);
    holder.exec('BEGIN IMMEDIATE');
    try {
      // A sign-in stores its request: a write, which waits for the lock and then gives up. node:sqlite waits
      // synchronously, so the rounds made due above, each waiting out the same lock first, can hold it back a while.
      const page = await get(`${url}/signin`, {}, 90_000);
      assert.equal(page.status, 503, page.body.slice(0, 400));
      assert.match(page.body, /database/i);
      assert.match(page.body, /try again/i);
      assert.ok(serve.alive(), logs());
    } finally {
      holder.exec('COMMIT');
      holder.close();
    }
    const signin = await get(`${url}/signin`);
    assert.equal(signin.status, 303, signin.body.slice(0, 400));
    await waitForRound(rig, since, logs);
    await assertMirrors(rig.db.store, tenant!);
    assert.ok(serve.alive(), logs());
    assert.match(serve.output(), /locked by another process/);
    assertCleanLog(serve.output(), rig.env.DATABASE_URL);
  });
});

/**
 * `roster serve` started on a database file it cannot write (made immutable
 * with chattr, which binds root too; skipped, saying why, where that is not allowed).
 */
describe('roster serve on SQLite when the database file is read-only', () => {
  let rig: FaultRig<null>;
  let serve: RosterProcess | undefined;
  let cannotProtect: string | undefined;
  const logs = () => serve?.output().slice(-3000) ?? '';
  const writable = () => execFileSync('chattr', ['-i', rig.db.target], { stdio: 'pipe' });

  before(async () => {
    rig = await startFaultRig({ engine: 'sqlite', users: [300], env: { SYNC_TICK_SECONDS: '1', SYNC_INTERVAL_MINUTES: '60' } });
    try {
      execFileSync('chattr', ['+i', rig.db.target], { stdio: 'pipe' });
    } catch (err) {
      cannotProtect = `the database file cannot be made read-only for root here (${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim().split('\n')[0]})`;
    }
  });
  after(async () => {
    if (!cannotProtect) writable();
    await serve?.stop();
    await rig?.close();
  });

  it('writes answer 503 in words and syncs are not run, saying why; nothing crashes; once the file is writable, it works again without a restart', async (t) => {
    if (cannotProtect) {
      process.stdout.write(`# skipped: ${cannotProtect}\n`);
      return t.skip(cannotProtect);
    }
    const tenant = rig.tenants[0]!;
    rig.emulator.ctx.directory.addUser(tenant, { userPrincipalName: `readonly@${tenant.defaultDomain}`, displayName: 'Read Only' });
    let url: string;
    ({ serve, url } = await spawnServe(rig));
    const page = await get(`${url}/signin`);
    assert.equal(page.status, 503, page.body.slice(0, 400));
    assert.match(page.body, /database/i);
    assert.match(page.body, /try again/i);
    await waitUntil('a sync is refused for the read-only file', () => /sync not run: the database is unavailable/.test(serve!.output()), { ms: 60_000, context: logs });
    assert.ok(serve.alive(), logs());

    writable();
    const since = Date.now();
    const again = await get(`${url}/signin`);
    assert.equal(again.status, 303, again.body.slice(0, 400));
    await waitForRound(rig, since, logs);
    await assertMirrors(rig.db.store, tenant);
    assert.ok(serve.alive(), logs());
    assert.match(serve.output(), /the database file is read-only/);
    assert.equal(serve.output().match(/purging expired sign-in requests and sessions failed/g)?.length, 1, 'a purge failing at every tick is logged once');
    assert.match(serve.output(), /purging expired sign-in requests and sessions works again/);
    assertCleanLog(serve.output(), undefined);
  });
});

/** Fills the filesystem holding `path` with one file, to the last byte it takes. */
async function fillDisk(path: string): Promise<void> {
  const file = await open(path, 'w');
  try {
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          await file.write(chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
  } finally {
    await file.close();
  }
}

/**
 * `roster serve` on SQLite when the disk holding its database fills up: a
 * small tmpfs holds the data folder, so this needs the right to mount one
 * (root in a VM or a privileged container); elsewhere it is skipped, saying why.
 */
describe('roster serve on SQLite when the disk holding the database is full', () => {
  let mountPoint: string | undefined;
  let cannotMount: string | undefined;
  let rig: FaultRig<null>;
  let serve: RosterProcess;
  let url: string;
  const logs = () => serve.output().slice(-3000);

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'roster-tinyfs-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', dir], { stdio: 'pipe' });
      mountPoint = dir;
    } catch (err) {
      cannotMount = `a tiny filesystem to fill cannot be mounted here (${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim().split('\n')[0]})`;
      await rm(dir, { recursive: true, force: true });
      return;
    }
    rig = await startFaultRig({ engine: 'sqlite', users: [400], sqliteParent: mountPoint, env: { SYNC_TICK_SECONDS: '1', SYNC_INTERVAL_MINUTES: '60' } });
    ({ serve, url } = await spawnServe(rig));
    await waitForRound(rig, 0, logs);
  });
  after(async () => {
    await serve?.stop();
    await rig?.close();
    if (mountPoint) {
      execFileSync('umount', [mountPoint]);
      await rm(mountPoint, { recursive: true, force: true });
    }
  });

  it('a sync that needs room the disk lacks fails with the reason; nothing crashes; once there is room the next round is exact', async (t) => {
    if (cannotMount) {
      process.stdout.write(`# skipped: ${cannotMount}\n`);
      return t.skip(cannotMount);
    }
    const tenant = rig.tenants[0]!;
    const failedRuns = () => rig.db.store.db.selectFrom('sync_runs').select('error').where('tenant_id', '=', tenant.id).where('status', '=', 'failed').execute();
    const filler = join(mountPoint!, 'filler');
    // A megabyte kept free: room for the small writes that make the tenant due, not for the round.
    const reserve = join(mountPoint!, 'reserve');
    await writeFile(reserve, Buffer.alloc(1 << 20));
    await fillDisk(filler);
    await rm(reserve);
    // Several megabytes to store, far more than is left.
    rig.emulator.ctx.directory.addUsersUnchecked(
      tenant,
      Array.from({ length: 5000 }, (_, i) => ({ userPrincipalName: `bulky${i}@${tenant.defaultDomain}`, displayName: `Bulky ${i} ${'x'.repeat(200)}`, department: 'y'.repeat(100) })),
    );
    try {
      await makeEveryTenantDue(rig);
      await waitUntil('the run has failed on the full disk', async () => (await failedRuns()).length > 0, { ms: 120_000, context: logs });
      assert.match((await failedRuns())[0]!.error ?? '', /the disk holding the database is full/);
      assert.ok(serve.alive(), logs());
      // A page still answers: at once if the write it needs fits, else 503 in words, never a 500.
      const page = await get(`${url}/signin`);
      assert.ok([303, 503].includes(page.status), `${page.status}: ${page.body.slice(0, 400)}`);
      if (page.status === 503) assert.match(page.body, /try again/i);
    } finally {
      await rm(filler, { force: true });
    }
    await waitForRound(rig, await makeEveryTenantDue(rig), logs);
    await assertMirrors(rig.db.store, tenant);
    assert.ok(serve.alive(), logs());
    assertCleanLog(serve.output(), undefined);
  });
});
