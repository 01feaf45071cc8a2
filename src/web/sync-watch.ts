import type { SyncHealth, SyncStatus, SyncStatusRepository } from '../store/sync-status.ts';

/** What the sync panel shows live; read from the database, so runs in worker processes show too. */
export interface SyncSnapshot {
  state: 'idle' | 'queued' | 'running' | 'held';
  health: SyncHealth;
  lastSuccessAt: number | null;
  lastError: string | null;
  run: { id: string; kind: 'full' | 'delta'; pages: number; users: number; created: number; updated: number; deleted: number; startedAt: number } | null;
  /** Users a full listing is expected to read (the local copy before it), or null when unknown. */
  expected: number | null;
}

/** A "Sync now" not picked up within this time is no longer shown as queued (the daemon may be down). */
const QUEUED_FOR_MS = 10 * 60_000;

export async function syncSnapshot(repo: SyncStatusRepository, tenantId: string, now: number): Promise<SyncSnapshot> {
  return snapshotOf(await repo.status(tenantId), now);
}

export function snapshotOf(status: SyncStatus, now: number): SyncSnapshot {
  const current = status.current;
  const run = current ? { id: current.id, kind: current.kind, pages: current.pages, users: current.listed, created: current.created, updated: current.updated, deleted: current.deleted, startedAt: current.startedAt } : null;
  let state: SyncSnapshot['state'] = 'idle';
  if (current?.status === 'held') state = 'held';
  else if (current) state = 'running';
  else if (status.requestedAt !== null && now - status.requestedAt < QUEUED_FOR_MS) state = 'queued';
  // A full listing reads about as many users as the last complete copy had; before one exists the size is unknown.
  const before = status.users - (run?.created ?? 0);
  return {
    state,
    health: status.health,
    lastSuccessAt: status.lastSuccessAt,
    lastError: status.lastError,
    run,
    expected: run?.kind === 'full' && status.lastSuccessAt !== null && before > 0 ? before : null,
  };
}

type Listener = (snapshot: SyncSnapshot) => void;

/**
 * One database poll per watched tenant, however many browsers watch it: the
 * sync may run in another process, so the database is the only place that
 * knows its progress.
 */
export class SyncWatch {
  readonly #repo: SyncStatusRepository;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #tenants = new Map<string, { listeners: Set<Listener>; timer: NodeJS.Timeout; last: string }>();

  constructor(repo: SyncStatusRepository, now: () => number, intervalMs = 500) {
    this.#repo = repo;
    this.#now = now;
    this.#intervalMs = intervalMs;
  }

  /** Calls `listener` with each changed snapshot of the tenant until the returned function is called. */
  watch(tenantId: string, listener: Listener): () => void {
    let entry = this.#tenants.get(tenantId);
    if (!entry) {
      const created = { listeners: new Set<Listener>(), last: '', timer: setInterval(() => void this.#poll(tenantId), this.#intervalMs) };
      created.timer.unref();
      this.#tenants.set(tenantId, created);
      entry = created;
    }
    entry.listeners.add(listener);
    return () => {
      const current = this.#tenants.get(tenantId);
      if (!current) return;
      current.listeners.delete(listener);
      if (current.listeners.size === 0) {
        clearInterval(current.timer);
        this.#tenants.delete(tenantId);
      }
    };
  }

  close(): void {
    for (const entry of this.#tenants.values()) clearInterval(entry.timer);
    this.#tenants.clear();
  }

  async #poll(tenantId: string): Promise<void> {
    const entry = this.#tenants.get(tenantId);
    if (!entry) return;
    let snapshot: SyncSnapshot;
    try {
      snapshot = await syncSnapshot(this.#repo, tenantId, this.#now());
    } catch {
      // The next tick tries again; a closed store at shutdown is not worth a log line per browser.
      return;
    }
    const text = JSON.stringify(snapshot);
    if (text === entry.last) return;
    entry.last = text;
    for (const listener of entry.listeners) listener(snapshot);
  }
}
