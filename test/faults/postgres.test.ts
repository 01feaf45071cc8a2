import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Browser } from '../helpers/browser.ts';
import type { TestRoster } from '../helpers/roster.ts';
import { assertMirrors } from '../helpers/mirror.ts';
import { passIdentityProvider } from '../web/flows.ts';
import { assertCleanLog, get, isReady, makeEveryTenantDue, spawnRoster, spawnServe, startFaultRig, waitForRound, waitUntil, type FaultRig, type RosterProcess } from './rig.ts';

/** How long each cut refuses new connections: a short failover. */
const OUTAGE_MS = 3000;
/** Graph's delay on the big tenant's pages, so a cut lands in the middle of its listing. */
const PAGE_DELAY_MS = 400;

/**
 * PostgreSQL cut away from a running `roster serve` and `roster worker`
 * (through the fault proxy, as a failover or a restart would): both live on,
 * say they are not ready while it is gone, recover on their own, and the
 * directory copy ends equal to the emulator's.
 */
describe('roster serve and roster worker when PostgreSQL goes away', () => {
  let rig: FaultRig;
  let serve: RosterProcess;
  let worker: RosterProcess;
  let url: string;
  const logs = () => `--- serve ---\n${serve.output().slice(-3000)}\n--- worker ---\n${worker.output().slice(-3000)}`;

  before(async () => {
    rig = await startFaultRig({ users: [5000, 300, 300], env: { SYNC_TICK_SECONDS: '1', SYNC_INTERVAL_MINUTES: '60', SYNC_CONCURRENCY: '2' } });
    // Pages slow enough that a cut lands in the middle of the big tenant's listing.
    await rig.emulator.control('POST', '/faults', { target: 'graph', kind: 'delay', delayMs: PAGE_DELAY_MS, tenant: rig.tenants[0]!.id });
    ({ serve, url } = await spawnServe(rig));
    worker = spawnRoster(['worker'], rig.env);
    // A worker that cannot reach its database at start-up exits (by design): the first cut must find it running.
    await waitUntil('roster worker has started', async () => worker.output().includes('worker started') || !worker.alive(), { ms: 120_000, context: logs });
    assertAlive();
  });

  after(async () => {
    await serve?.stop();
    await worker?.stop();
    await rig?.close();
  });

  const ready = () => isReady(url);

  function assertAlive(): void {
    assert.ok(serve.alive(), `roster serve died:\n${logs()}`);
    assert.ok(worker.alive(), `roster worker died:\n${logs()}`);
  }

  /** While the proxy refuses: readiness says why, and a page that needs the database answers 503 in words. */
  async function assertOutageAnswers(): Promise<void> {
    const readiness = await get(`${url}/readyz`);
    assert.equal(readiness.status, 503);
    assert.match(JSON.parse(readiness.body).reason, /database/);
    const page = await get(`${url}/signin`);
    assert.equal(page.status, 503, page.body.slice(0, 400));
    assert.match(page.body, /database/i);
    assert.match(page.body, /try again/i);
  }

  async function assertEveryTenantMirrored(): Promise<void> {
    for (const tenant of rig.tenants) await assertMirrors(rig.db.store, tenant);
  }

  it('a cut in the middle of a sync page: both processes live, the run fails with the reason, the schedule retries it, nothing is lost', async () => {
    const big = rig.tenants[0]!;
    await waitUntil(
      'the big tenant is a few pages into its first listing',
      async () => ((await rig.db.store.db.selectFrom('sync_runs').select('pages').where('tenant_id', '=', big.id).where('status', '=', 'running').executeTakeFirst())?.pages ?? 0) >= 2,
      { ms: 120_000, context: logs },
    );
    const cutAtMs = Date.now();
    rig.proxy.cut({ refuseMs: OUTAGE_MS });
    rig.proxy.refuse();
    try {
      await assertOutageAnswers();
      assertAlive();
      // The cut may land while the run waits on Graph, holding no connection: keep refusing
      // until its next page has been served, so that page's write meets the outage. Had it landed
      // during a write, that write failed at once and no page follows: the wait runs out, and the
      // run's recorded failure below is what shows either way.
      const graphAnswered = () => rig.emulator.ctx.requestLog.entries({ tenant: big.id, sinceMs: cutAtMs }).some((entry) => entry.route.includes('/users') && entry.status !== undefined);
      for (const giveUpAt = Date.now() + 15_000; !graphAnswered() && Date.now() < giveUpAt; ) await new Promise((resolve) => setTimeout(resolve, 100));
      // Its write of that page follows at once and fails on the refused connection. Nothing outside the
      // process marks that moment, so the outage lasts a second more; were it too short, the run would
      // succeed and the wait below for the failed run would time out: this margin cannot make the test pass.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } finally {
      rig.proxy.accept();
    }

    await waitUntil('/readyz answers 200 again', ready, { ms: 30_000, context: logs });
    await waitUntil(
      'the interrupted run is recorded as failed with the reason',
      async () => (await rig.db.store.db.selectFrom('sync_runs').select('id').where('tenant_id', '=', big.id).where('status', '=', 'failed').execute()).length > 0,
      { ms: 30_000, context: logs },
    );
    const failed = await rig.db.store.db.selectFrom('sync_runs').select('error').where('tenant_id', '=', big.id).where('status', '=', 'failed').executeTakeFirstOrThrow();
    assert.match(failed.error ?? '', /database/i);
    await waitUntil(
      'the tenant lock is given back',
      async () => (await rig.db.store.db.selectFrom('sync_state').select('lock_owner').where('tenant_id', '=', big.id).executeTakeFirstOrThrow()).lock_owner === null,
      { ms: 10_000, context: logs },
    );

    await waitForRound(rig, await makeEveryTenantDue(rig), logs);
    await assertEveryTenantMirrored();
    const health = await rig.db.store.db.selectFrom('sync_state').select(['health', 'last_error']).where('tenant_id', '=', big.id).executeTakeFirstOrThrow();
    assert.deepEqual(health, { health: 'ok', last_error: null });
    assertAlive();
  });

  it('a cut while idle and one during a pg-boss fetch: both processes live, recover, and the next round is exact', async () => {
    // Refused until the answers are checked: on a loaded machine they may take longer than an outage.
    rig.proxy.cut();
    rig.proxy.refuse();
    try {
      await assertOutageAnswers();
    } finally {
      rig.proxy.accept();
    }
    await waitUntil('/readyz answers 200 again', ready, { ms: 30_000, context: logs });

    // Hold every byte until the workers' polling has a query in flight, then cut it.
    rig.proxy.pause();
    await waitUntil('a query waits in the proxy', () => rig.proxy.held > 0, { ms: 10_000 });
    rig.proxy.cut({ refuseMs: OUTAGE_MS });
    rig.proxy.resume();
    assertAlive();
    await waitUntil('/readyz answers 200 again', ready, { ms: 30_000, context: logs });

    const [first, second] = rig.tenants;
    rig.emulator.ctx.directory.addUser(first!, { userPrincipalName: `late@${first!.defaultDomain}`, displayName: 'Late Arrival' });
    rig.emulator.ctx.directory.editUser(second!, second!.users[3]!.props.id, { jobTitle: 'Promoted' });
    await waitForRound(rig, await makeEveryTenantDue(rig), logs);
    await assertEveryTenantMirrored();
    assertAlive();
  });

  it('a cut during a sign-in: the callback answers 503 in words, and signing in again works', async () => {
    const tenant = rig.tenants[1]!;
    const upn = `signer@${tenant.defaultDomain}`;
    rig.emulator.ctx.directory.addUser(tenant, { userPrincipalName: upn, displayName: 'Sig Ner', password: 'pw' });
    // Let a sync copy the new user, or the sign-in would be refused as unknown.
    await waitForRound(rig, await makeEveryTenantDue(rig), logs);

    const emulatorSide = { emulator: rig.emulator } as TestRoster;
    const browser = new Browser();
    const back = await passIdentityProvider(browser, emulatorSide, await browser.get(`${url}/signin`), upn);
    rig.proxy.cut({ refuseMs: 60_000 });
    const callback = await browser.get(new URL(back.location!, back.url).href);
    assert.equal(callback.status, 503, callback.html.slice(0, 400));
    assert.match(callback.html, /database/i);
    rig.proxy.accept();
    await waitUntil('/readyz answers 200 again', ready, { ms: 30_000, context: logs });

    const again = await passIdentityProvider(browser, emulatorSide, await browser.get(`${url}/signin`), upn);
    const signedIn = await browser.get(new URL(again.location!, again.url).href);
    assert.equal(signedIn.status, 303, signedIn.html.slice(0, 400));
    const home = await browser.get(new URL(signedIn.location!, signedIn.url).href);
    assert.equal(home.status, 200);
    assert.match(home.html, /Sig Ner/);
    assertAlive();
  });

  it('the logs hold no object dumps and no connection parameters', () => {
    assertAlive();
    assert.match(serve.output() + worker.output(), /database/, 'the outages were logged');
    assertCleanLog(serve.output(), rig.env.DATABASE_URL!);
    assertCleanLog(worker.output(), rig.env.DATABASE_URL!);
  });
});
