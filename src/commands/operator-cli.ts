import { userInfo } from 'node:os';
import type { RosterConfig } from '../config/config.ts';
import { RosterError } from '../errors.ts';
import { migrateToLatest, openStore, type Store } from '../store/database.ts';
import type { AuditActor } from '../store/audit.ts';
import { InvalidInputError, TenantNotFoundError } from '../tenants/errors.ts';
import type { SyncRequests } from '../tenants/operator-actions.ts';

/** What the operator commands share: who the audit log records, the store, tables and errors as exit codes. */

export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The audit log's "who" for a command: the command line, with the local account that ran it. */
export function cliActor(): AuditActor {
  let account: string | null = null;
  try {
    account = userInfo().username;
  } catch {
    // Some containers run as a user with no name.
  }
  return { kind: 'cli', id: 'cli', name: account, source: 'cli' };
}

/** Runs `work` on the configured database (migrated first, as `roster serve` would), then closes it. */
export async function withStore<T>(config: RosterConfig, work: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(config.database);
  try {
    await migrateToLatest(store);
    return await work(store);
  } finally {
    await store.close();
  }
}

/** A wrong word or value on the command line: exit 2 with the message and the usage. */
export class UsageError extends Error {}

/** Exit 2 for input to fix (bad id, unknown tenant), 1 for an action the tenant's state refuses; anything else is not ours to handle. */
export function reportFailure(command: string, usage: string, err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`roster ${command}: ${err.message}\n\n${usage}`);
    return 2;
  }
  if (err instanceof InvalidInputError || err instanceof TenantNotFoundError) {
    process.stderr.write(`roster ${command}: ${err.message}\n`);
    return 2;
  }
  if (err instanceof RosterError && err.expose && err.status < 500) {
    process.stderr.write(`roster ${command}: ${err.message}\n`);
    return 1;
  }
  throw err;
}

/** The tenant id argument, checked. */
export function tenantIdArgument(value: string | undefined, what = 'a tenant id'): string {
  if (value === undefined) throw new UsageError(`needs ${what} (a GUID).`);
  if (!GUID.test(value)) throw new UsageError(`"${value}" is not a tenant id (a GUID).`);
  return value.toLowerCase();
}

/** Rows as aligned columns, the first row the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export function isoOrDash(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** For commands that run no directory sync: a resumed tenant is picked up by the running scheduler at its next round. */
export const NO_SYNC_HERE: SyncRequests = {
  requestSync: () => {},
  confirmHeldDeletion: () => Promise.reject(new Error('held decisions need the sync engine')),
  discardHeldDeletion: () => Promise.reject(new Error('held decisions need the sync engine')),
};
