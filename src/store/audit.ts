import type { Kysely, Selectable } from 'kysely';
import type { AuditLogTable, Database } from './schema.ts';

export type AuditActorKind = AuditLogTable['actor_kind'];

/** Who did something: a signed-in person (`tid:oid`), an API key (its id), or the command line. */
export interface AuditActor {
  kind: AuditActorKind;
  id: string;
  name: string | null;
  /** The client address, or `cli`. */
  source: string;
}

export interface NewAuditEntry {
  actor: AuditActor;
  action: string;
  tenantId?: string | null;
  target?: string | null;
  detail?: Record<string, unknown> | null;
}

export interface AuditEntry {
  id: number;
  at: number;
  actor: AuditActor;
  action: string;
  tenantId: string | null;
  target: string | null;
  detail: Record<string, unknown> | null;
}

export interface AuditFilter {
  tenantId?: string;
  actorId?: string;
  action?: string;
}

function toEntry(row: Selectable<AuditLogTable>): AuditEntry {
  return {
    id: Number(row.id),
    at: Number(row.at),
    actor: { kind: row.actor_kind, id: row.actor_id, name: row.actor_name, source: row.source },
    action: row.action,
    tenantId: row.tenant_id,
    target: row.target,
    detail: row.detail ? (JSON.parse(row.detail) as Record<string, unknown>) : null,
  };
}

/**
 * The audit log (security rule 35). It has an insert and reads, and no update
 * or delete: nothing in Roster can edit an entry, and database triggers refuse
 * it for any other client too.
 */
export class AuditRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async record(entry: NewAuditEntry, now: number): Promise<void> {
    await this.#db
      .insertInto('audit_log')
      .values({
        at: now,
        actor_kind: entry.actor.kind,
        actor_id: entry.actor.id,
        actor_name: entry.actor.name,
        action: entry.action,
        tenant_id: entry.tenantId ?? null,
        target: entry.target ?? null,
        detail: entry.detail ? JSON.stringify(entry.detail) : null,
        source: entry.actor.source,
      })
      .execute();
  }

  /** Newest first, `limit` entries older than the entry `before` (keyset on the id). */
  async page(filter: AuditFilter, page: { before?: number; limit: number }): Promise<AuditEntry[]> {
    let query = this.#db.selectFrom('audit_log').selectAll();
    if (filter.tenantId) query = query.where('tenant_id', '=', filter.tenantId);
    if (filter.actorId) query = query.where('actor_id', '=', filter.actorId);
    if (filter.action) query = query.where('action', '=', filter.action);
    if (page.before !== undefined) query = query.where('id', '<', page.before);
    const rows = await query.orderBy('id', 'desc').limit(page.limit).execute();
    return rows.map(toEntry);
  }
}
