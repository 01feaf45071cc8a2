/**
 * Freshness (change notifications, rule 6): users are edited in the emulator
 * at a steady rate while Roster runs with its scheduler; each change's time
 * until it is in Roster's database, p50/p95/max, with notifications on and
 * with scheduled rounds alone. Both in one run, on SQLite.
 *
 *   node_modules/.bin/node bench/freshness.ts [--changes 60] [--every-ms 500] [--interval-seconds 15]
 *
 * Without notifications a change waits for the next scheduled round, so its
 * delay is bounded by the interval (here `--interval-seconds`, a stand-in for
 * SYNC_INTERVAL_MINUTES); with them it waits for a debounced delta round.
 */
import { parseArgs } from 'node:util';
import { addSignedUpTenant } from '../test/helpers/mirror.ts';
import { startTestRoster } from '../test/helpers/roster.ts';

const { values } = parseArgs({ options: { changes: { type: 'string' }, 'every-ms': { type: 'string' }, 'interval-seconds': { type: 'string' } } });
const CHANGES = Number(values.changes ?? 60);
const EVERY_MS = Number(values['every-ms'] ?? 500);
const INTERVAL_SECONDS = Number(values['interval-seconds'] ?? 15);
const USERS = 2000;

interface Figures {
  p50: number;
  p95: number;
  max: number;
  missed: number;
}

async function measure(notifications: boolean): Promise<Figures> {
  const t = await startTestRoster({ notifications, scheduled: { intervalMinutes: INTERVAL_SECONDS / 60, tickSeconds: 1 } });
  try {
    const tenant = await addSignedUpTenant(t.emulator, t.db.store, USERS, (i, domain) => ({ userPrincipalName: `user${i}@${domain}`, displayName: `User ${i}` }));
    await t.scheduler.syncNow(tenant.id);
    if (notifications) {
      await t.roster.notifications!.subscriptions.maintain();
      if (!t.emulator.ctx.subscriptions.all().some((s) => s.tenantId === tenant.id)) throw new Error('no subscription was created');
    }
    const madeAt = new Map<string, number>();
    const seenAt = new Map<string, number>();
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const rows = await t.db.store.db.selectFrom('users').select(['job_title']).where('tenant_id', '=', tenant.id).where('job_title', 'like', 'fresh %').execute();
        const now = performance.now();
        for (const row of rows) if (!seenAt.has(row.job_title!)) seenAt.set(row.job_title!, now);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    for (let i = 0; i < CHANGES; i++) {
      const title = `fresh ${i}`;
      madeAt.set(title, performance.now());
      t.emulator.ctx.directory.editUser(tenant, tenant.users[(i * 37) % USERS]!.props.id, { jobTitle: title });
      await new Promise((resolve) => setTimeout(resolve, EVERY_MS));
    }
    const deadline = performance.now() + (INTERVAL_SECONDS + 30) * 1000;
    while (seenAt.size < CHANGES && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    polling = false;
    await poller;
    const delays = [...madeAt].filter(([title]) => seenAt.has(title)).map(([title, at]) => seenAt.get(title)! - at).sort((a, b) => a - b);
    const at = (q: number) => delays[Math.min(delays.length - 1, Math.ceil(q * delays.length) - 1)] ?? Number.NaN;
    return { p50: at(0.5), p95: at(0.95), max: delays.at(-1) ?? Number.NaN, missed: CHANGES - delays.length };
  } finally {
    await t.close();
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const withNotifications = await measure(true);
const scheduledOnly = await measure(false);
console.log(`freshness: ${CHANGES} changes, one every ${EVERY_MS} ms, tenant of ${USERS} users, scheduled interval ${INTERVAL_SECONDS} s`);
for (const [name, f] of [['with notifications', withNotifications], ['scheduled rounds only', scheduledOnly]] as const) {
  console.log(`  ${name.padEnd(22)} p50 ${seconds(f.p50).padStart(8)}  p95 ${seconds(f.p95).padStart(8)}  max ${seconds(f.max).padStart(8)}  not seen ${f.missed}`);
}
console.log(`  ratio (scheduled / notifications): p50 ${(scheduledOnly.p50 / withNotifications.p50).toFixed(1)}x, p95 ${(scheduledOnly.p95 / withNotifications.p95).toFixed(1)}x`);
