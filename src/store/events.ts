import { randomBytes } from 'node:crypto';
import { CompiledQuery, sql, type Kysely, type Selectable } from 'kysely';
import type { Engine } from './database.ts';
import type { Database, EventsTable } from './schema.ts';
import { inBatches } from './synced-users.ts';

export type EventRow = Selectable<EventsTable>;

/** An event as its producer hands it over, before it has an id and a place in the feed. */
export interface EventDraft {
  type: string;
  tenantId: string | null;
  data: unknown;
  previousAttributes?: Record<string, unknown> | null;
}

export interface EventQuery {
  /** Only events after this sequence (the feed's cursor). */
  after: number;
  types?: readonly string[];
  tenantId?: string;
  limit: number;
}

/**
 * Any number held by every transaction that appends events on PostgreSQL. Sequence numbers
 * are drawn in commit order only if appenders take turns; otherwise a reader of the feed
 * could see 11 committed while 10 is still in flight, move its cursor past 10 and never see it.
 * On SQLite writers take turns already.
 */
const APPEND_LOCK = 0x526f7374;

/** Rows per insert: 1,000 rows of 7 values stay far under either engine's parameter limit. */
const INSERT_BATCH = 1000;

/**
 * `count` ids of the form `<prefix>_<22 base64url characters>`: the time in
 * milliseconds (6 bytes) then 80 random bits, drawn in one call rather than one
 * each. Ids made close in time land close together in the unique index, so a
 * large outbox takes new ones without touching pages all over it.
 */
export function newIds(prefix: string, count: number): string[] {
  const bytes = randomBytes(16 * count);
  const now = Date.now();
  for (let i = 0; i < count; i++) bytes.writeUIntBE(now, 16 * i, 6);
  const ids = new Array<string>(count);
  for (let i = 0; i < count; i++) ids[i] = `${prefix}_${bytes.toString('base64url', 16 * i, 16 * i + 16)}`;
  return ids;
}

const EVENT_COLUMNS = 'id, type, tenant_id, created_at, data, previous_attributes';
/**
 * PostgreSQL: the same six parameters (one array per column) whatever the row count, so the statement is planned once.
 * The data travel as one JSON array whose elements are taken out as they were written: as a text array each
 * document would be escaped again (every quote) and parsed back, which cost a third of the insert.
 */
const POSTGRES_INSERT = `insert into events (${EVENT_COLUMNS})
select r.id, r.type, r.tenant_id, r.created_at, d.data::text, r.previous_attributes
from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $6::text[]) with ordinality as r(id, type, tenant_id, created_at, previous_attributes, n)
join json_array_elements($5::json) with ordinality as d(data, n) using (n)
order by n`;
/** SQLite: one statement text per row count (a page is nearly always full), kept so it is prepared once. */
const sqliteInserts = new Map<number, string>();

function sqliteInsert(rows: number): string {
  let text = sqliteInserts.get(rows);
  if (!text) {
    text = `insert into events (${EVENT_COLUMNS}) values ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?)').join(', ')}`;
    if (sqliteInserts.size < 16) sqliteInserts.set(rows, text);
  }
  return text;
}

interface InsertedEvent {
  sequence: number | string;
  type: string;
  tenant_id: string | null;
}

/**
 * The outbox. `append` is the one writer every producer calls inside the
 * transaction of its change (a sync page, a lifecycle step, a held decision):
 * the events and the webhook deliveries they are owed commit with the change
 * or not at all. With events turned off it writes nothing.
 */
export class EventRepository {
  readonly #db: Kysely<Database>;
  readonly #engine: Engine;
  readonly #enabled: boolean;

  constructor(db: Kysely<Database>, engine: Engine, options: { enabled: boolean }) {
    this.#db = db;
    this.#engine = engine;
    this.#enabled = options.enabled;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Appends the events in order, and one pending delivery for each enabled endpoint that wants each. */
  async append(drafts: readonly EventDraft[], now: number): Promise<void> {
    if (!this.#enabled || drafts.length === 0) return;
    if (this.#engine === 'postgres') await sql`select pg_advisory_xact_lock(${APPEND_LOCK})`.execute(this.#db);
    const endpoints = await this.#db.selectFrom('webhook_endpoints').select(['id', 'event_types', 'tenant_id']).where('enabled', '=', 1).execute();
    const wanted = endpoints.map((endpoint) => ({ id: endpoint.id, tenantId: endpoint.tenant_id, types: new Set(JSON.parse(endpoint.event_types) as string[]) }));
    for (const batch of inBatches(drafts, INSERT_BATCH)) {
      const inserted = await this.#insert(batch, now, wanted.length > 0);
      const deliveries = [];
      for (const event of inserted) {
        for (const endpoint of wanted) {
          if (endpoint.tenantId !== null && endpoint.tenantId !== event.tenant_id) continue;
          if (endpoint.types.size > 0 && !endpoint.types.has(event.type)) continue;
          deliveries.push({ endpoint_id: endpoint.id, event_sequence: Number(event.sequence) });
        }
      }
      const ids = newIds('msg', deliveries.length);
      const rows = deliveries.map((delivery, i) => ({ ...delivery, id: ids[i]!, status: 'pending' as const, attempts: 0, schedule_step: 0, next_attempt_at: now, created_at: now, updated_at: now }));
      for (const part of inBatches(rows, INSERT_BATCH)) await this.#db.insertInto('webhook_deliveries').values(part).execute();
    }
  }

  /**
   * One statement for the batch, written as SQL text rather than built by the
   * query builder: building a thousand-row insert cost as much as running it.
   */
  async #insert(drafts: readonly EventDraft[], now: number, returning: boolean): Promise<InsertedEvent[]> {
    const count = drafts.length;
    const ids = newIds('evt', count);
    const types = new Array<string>(count);
    const tenants = new Array<string | null>(count);
    const data = new Array<string>(count);
    const previous = new Array<string | null>(count);
    for (let i = 0; i < count; i++) {
      const draft = drafts[i]!;
      types[i] = draft.type;
      tenants[i] = draft.tenantId;
      data[i] = JSON.stringify(draft.data);
      previous[i] = draft.previousAttributes ? JSON.stringify(draft.previousAttributes) : null;
    }
    const tail = returning ? ' returning sequence, type, tenant_id' : '';
    if (this.#engine === 'postgres') {
      const times = new Array<number>(count).fill(now);
      // Each element's text is exactly its JSON.stringify, as the array is their join.
      return (await this.#db.executeQuery<InsertedEvent>(CompiledQuery.raw(POSTGRES_INSERT + tail, [ids, types, tenants, times, `[${data.join(',')}]`, previous]))).rows;
    }
    const parameters = new Array<unknown>(6 * count);
    for (let i = 0; i < count; i++) {
      parameters[6 * i] = ids[i];
      parameters[6 * i + 1] = types[i];
      parameters[6 * i + 2] = tenants[i];
      parameters[6 * i + 3] = now;
      parameters[6 * i + 4] = data[i];
      parameters[6 * i + 5] = previous[i];
    }
    return (await this.#db.executeQuery<InsertedEvent>(CompiledQuery.raw(sqliteInsert(count) + tail, parameters))).rows;
  }

  /** The feed: events after the cursor, in sequence order, optionally of some types and one tenant. */
  async list(query: EventQuery): Promise<EventRow[]> {
    let select = this.#db.selectFrom('events').selectAll().where('sequence', '>', query.after);
    if (query.types?.length) select = select.where('type', 'in', query.types);
    if (query.tenantId !== undefined) select = select.where('tenant_id', '=', query.tenantId);
    const rows = await select.orderBy('sequence').limit(query.limit).execute();
    return rows.map((row) => ({ ...row, sequence: Number(row.sequence) }));
  }

  async get(id: string): Promise<EventRow | undefined> {
    const row = await this.#db.selectFrom('events').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? { ...row, sequence: Number(row.sequence) } : undefined;
  }

  /**
   * Deletes up to `batch` of the oldest events created before `cutoff` (their
   * deliveries and attempts go with them); returns how many. Reads from the
   * head of the sequence, so no index on the time is needed.
   */
  async pruneBatch(cutoff: number, batch: number): Promise<number> {
    const oldest = await this.#db.selectFrom('events').select(['sequence', 'created_at']).orderBy('sequence').limit(batch).execute();
    let upTo: number | null = null;
    for (const row of oldest) {
      if (row.created_at >= cutoff) break;
      upTo = Number(row.sequence);
    }
    if (upTo === null) return 0;
    const result = await this.#db.deleteFrom('events').where('sequence', '<=', upTo).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
