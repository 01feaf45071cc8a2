import { randomBytes } from 'node:crypto';
import { CompiledQuery, type Kysely, type Selectable } from 'kysely';
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
 * The insert itself takes the turn before it draws its first number (below), so the turn costs
 * no round trip of its own. On SQLite writers take turns already.
 */
const APPEND_LOCK = 0x526f7374;

/** Rows per SQLite insert: 1,000 rows of 6 values stay far under its parameter limit. */
const INSERT_BATCH = 1000;
/** Events per PostgreSQL statement: its parameters are six whatever the count, but 10,000 a statement measured no faster than 1,000. */
const POSTGRES_BATCH = 1000;

/**
 * `count` ids of the form `<prefix>_<22 base64url characters>`: the time in
 * milliseconds (6 bytes) then 80 random bits, drawn in one call rather than one
 * each. Ids made close in time land close together in an index on them
 * (SQLite's outbox keeps a unique one), so a large outbox takes new ones
 * without touching pages all over it.
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
 * PostgreSQL: a batch of events and the deliveries they are owed, in one statement with the same six parameters
 * (one array per column, the time once) whatever the row count, so it is planned once and costs one round trip.
 * - The turn: the lock is an uncorrelated subquery in the filter, so it is taken once, before the first row
 *   reaches the insert and draws its sequence number (`order by n` keeps the rows in a sort below the insert).
 *   Taking it again in the same transaction is free: transaction-level advisory locks are re-entrant.
 * - The data travel as one JSON array whose elements are taken out as they were written: as a text array each
 *   document would be escaped again (every quote) and parsed back, which cost a third of the insert.
 * - Deliveries: one for each enabled endpoint whose tenant and types want the event, with an id made as
 *   `newIds` makes them (the time in milliseconds, then 80 random bits from a version 4 UUID's random bytes).
 */
const POSTGRES_APPEND = `with inserted as (
  insert into events (${EVENT_COLUMNS})
  select r.id, r.type, r.tenant_id, $4::bigint, d.data::text, r.previous_attributes
  from unnest($1::text[], $2::text[], $3::text[], $6::text[]) with ordinality as r(id, type, tenant_id, previous_attributes, n)
  join json_array_elements($5::json) with ordinality as d(data, n) using (n)
  where (select pg_advisory_xact_lock(${APPEND_LOCK})) is not null
  order by n
  returning sequence, type, tenant_id
)
insert into webhook_deliveries (id, endpoint_id, event_sequence, status, attempts, schedule_step, next_attempt_at, created_at, updated_at)
select 'msg_' || translate(rtrim(encode(substring(int8send($4::bigint) from 3) || substring(w.random from 1 for 6) || substring(w.random from 11 for 4), 'base64'), '='), '+/', '-_'),
  w.endpoint_id, w.sequence, 'pending', 0, 0, $4::bigint, $4::bigint, $4::bigint
from (
  select e.id as endpoint_id, i.sequence, uuid_send(gen_random_uuid()) as random
  from inserted i
  join webhook_endpoints e on e.enabled = 1 and (e.tenant_id is null or e.tenant_id = i.tenant_id) and (jsonb_array_length(e.event_types::jsonb) = 0 or e.event_types::jsonb ? i.type)
) w`;
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
    if (this.#engine === 'postgres') {
      for (const batch of inBatches(drafts, POSTGRES_BATCH)) await this.#appendPostgres(batch, now);
      return;
    }
    const endpoints = await this.#db.selectFrom('webhook_endpoints').select(['id', 'event_types', 'tenant_id']).where('enabled', '=', 1).execute();
    const wanted = endpoints.map((endpoint) => ({ id: endpoint.id, tenantId: endpoint.tenant_id, types: new Set(JSON.parse(endpoint.event_types) as string[]) }));
    for (const batch of inBatches(drafts, INSERT_BATCH)) {
      const inserted = await this.#insertSqlite(batch, now, wanted.length > 0);
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

  /** One statement, one round trip: the turn, the events and their deliveries. */
  async #appendPostgres(drafts: readonly EventDraft[], now: number): Promise<void> {
    const count = drafts.length;
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
    // Each element's text is exactly its JSON.stringify, as the array is their join.
    await this.#db.executeQuery(CompiledQuery.raw(POSTGRES_APPEND, [newIds('evt', count), types, tenants, now, `[${data.join(',')}]`, previous]));
  }

  /**
   * One statement for the batch, written as SQL text rather than built by the
   * query builder: building a thousand-row insert cost as much as running it.
   */
  async #insertSqlite(drafts: readonly EventDraft[], now: number, returning: boolean): Promise<InsertedEvent[]> {
    const count = drafts.length;
    const ids = newIds('evt', count);
    const parameters = new Array<unknown>(6 * count);
    for (let i = 0; i < count; i++) {
      const draft = drafts[i]!;
      parameters[6 * i] = ids[i];
      parameters[6 * i + 1] = draft.type;
      parameters[6 * i + 2] = draft.tenantId;
      parameters[6 * i + 3] = now;
      parameters[6 * i + 4] = JSON.stringify(draft.data);
      parameters[6 * i + 5] = draft.previousAttributes ? JSON.stringify(draft.previousAttributes) : null;
    }
    const tail = returning ? ' returning sequence, type, tenant_id' : '';
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
