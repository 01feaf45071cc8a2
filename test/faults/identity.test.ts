import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Browser } from '../helpers/browser.ts';
import { assertMirrors } from '../helpers/mirror.ts';
import type { TestRoster } from '../helpers/roster.ts';
import { passIdentityProvider } from '../web/flows.ts';
import { assertCleanLog, makeEveryTenantDue, spawnServe, startFaultRig, waitForRound, waitUntil, type FaultRig, type RosterProcess } from './rig.ts';

/**
 * The identity provider and Graph unreachable for a while (the emulator's
 * `drop` and `unavailable` faults) under a running `roster serve`: sign-in
 * explains in words, syncs back off and fail with the reason, nothing crashes.
 */
describe('roster serve when Entra ID and Graph are unreachable', () => {
  let rig: FaultRig<null>;
  let serve: RosterProcess;
  let url: string;
  const logs = () => serve.output().slice(-3000);

  before(async () => {
    rig = await startFaultRig({ engine: 'sqlite', users: [300], env: { SYNC_TICK_SECONDS: '1', SYNC_INTERVAL_MINUTES: '60' } });
    rig.emulator.ctx.directory.addUser(rig.tenants[0]!, { userPrincipalName: `person@${rig.tenants[0]!.defaultDomain}`, displayName: 'Per Son', password: 'pw' });
    ({ serve, url } = await spawnServe(rig));
    await waitForRound(rig, 0, logs);
  });
  after(async () => {
    await serve?.stop();
    await rig?.close();
  });

  async function failedRuns(): Promise<{ error: string | null }[]> {
    return rig.db.store.db.selectFrom('sync_runs').select('error').where('status', '=', 'failed').execute();
  }

  for (const fault of [
    { target: 'graph', kind: 'unavailable', retryAfter: '1', reason: /503/ },
    { target: 'graph', kind: 'drop', reason: /^Microsoft Graph could not be reached \(fetch failed: / },
  ] as const) {
    it(`a sync while ${fault.target} answers "${fault.kind}": the run backs off, fails with the reason, and the next one is exact`, async () => {
      const before = (await failedRuns()).length;
      const tenant = rig.tenants[0]!;
      const { id } = await rig.emulator.control<{ id: string }>('POST', '/faults', { target: fault.target, kind: fault.kind, ...('retryAfter' in fault ? { retryAfter: fault.retryAfter } : {}) });
      try {
        rig.emulator.ctx.directory.editUser(tenant, tenant.users[5]!.props.id, { jobTitle: `After ${fault.kind}` });
        await makeEveryTenantDue(rig);
        await waitUntil('the run has failed', async () => (await failedRuns()).length > before, { ms: 60_000, context: logs });
      } finally {
        await rig.emulator.control('DELETE', `/faults/${id}`);
      }
      const failed = (await failedRuns()).at(-1)!;
      assert.match(failed.error ?? '', fault.reason);
      assert.ok(serve.alive(), logs());
      await waitForRound(rig, await makeEveryTenantDue(rig), logs);
      await assertMirrors(rig.db.store, tenant);
    });
  }

  it('a sign-in while the token endpoint drops connections: the callback explains in words, and a later sign-in works', async () => {
    const upn = `person@${rig.tenants[0]!.defaultDomain}`;
    const browser = new Browser();
    const emulatorSide = { emulator: rig.emulator } as TestRoster;
    const back = await passIdentityProvider(browser, emulatorSide, await browser.get(`${url}/signin`), upn);
    const { id } = await rig.emulator.control<{ id: string }>('POST', '/faults', { target: 'token', kind: 'drop' });
    let callback;
    try {
      callback = await browser.get(new URL(back.location!, back.url).href);
    } finally {
      await rig.emulator.control('DELETE', `/faults/${id}`);
    }
    assert.equal(callback.status, 503, callback.html.slice(0, 600));
    assert.match(callback.html, /could not reach Microsoft/);
    assert.match(callback.html, /Try again/);

    const again = await passIdentityProvider(browser, emulatorSide, await browser.get(`${url}/signin`), upn);
    const signedIn = await browser.get(new URL(again.location!, again.url).href);
    assert.equal(signedIn.status, 303, signedIn.html.slice(0, 400));
    assert.ok(serve.alive(), logs());
    assertCleanLog(serve.output(), undefined);
  });
});
