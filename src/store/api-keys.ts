import type { Kysely, Selectable } from 'kysely';
import type { ApiKeysTable, Database } from './schema.ts';

export interface ApiKeyRecord {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  tenantId: string | null;
  createdBy: string;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** The stored key with its hash, for the one place that authenticates requests. */
export interface StoredApiKey extends ApiKeyRecord {
  keyHash: string;
}

export interface NewApiKey {
  id: string;
  name: string;
  prefix: string;
  keyHash: string;
  scopes: readonly string[];
  tenantId: string | null;
  createdBy: string;
}

function toRecord(row: Selectable<ApiKeysTable>): StoredApiKey {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    keyHash: row.key_hash,
    scopes: JSON.parse(row.scopes) as string[],
    tenantId: row.tenant_id,
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : Number(row.last_used_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

function withoutHash({ keyHash: _hash, ...record }: StoredApiKey): ApiKeyRecord {
  return record;
}

export class ApiKeyRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(key: NewApiKey, now: number): Promise<ApiKeyRecord> {
    const row = { id: key.id, name: key.name, prefix: key.prefix, key_hash: key.keyHash, scopes: JSON.stringify(key.scopes), tenant_id: key.tenantId, created_by: key.createdBy, created_at: now, last_used_at: null, revoked_at: null };
    await this.#db.insertInto('api_keys').values(row).execute();
    return withoutHash(toRecord(row));
  }

  /** The key whose hash this is, revoked or not (the caller decides), by the unique index. */
  async findByHash(keyHash: string): Promise<StoredApiKey | undefined> {
    const row = await this.#db.selectFrom('api_keys').selectAll().where('key_hash', '=', keyHash).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async get(id: string): Promise<ApiKeyRecord | undefined> {
    const row = await this.#db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? withoutHash(toRecord(row)) : undefined;
  }

  /** Every key, newest first (operators have a handful, not thousands). */
  async list(): Promise<ApiKeyRecord[]> {
    const rows = await this.#db.selectFrom('api_keys').selectAll().orderBy('created_at', 'desc').orderBy('id').execute();
    return rows.map((row) => withoutHash(toRecord(row)));
  }

  /** Records a use, unless one was recorded within `coarsenessMs`: a busy key costs one write a minute, not one per request. */
  async touch(id: string, now: number, coarsenessMs: number): Promise<void> {
    await this.#db
      .updateTable('api_keys')
      .set({ last_used_at: now })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', now - coarsenessMs)]))
      .execute();
  }

  /** Revokes a key that is not revoked yet; true when this call revoked it. */
  async revoke(id: string, now: number): Promise<boolean> {
    const result = await this.#db.updateTable('api_keys').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
