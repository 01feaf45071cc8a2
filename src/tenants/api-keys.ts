import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Store } from '../store/database.ts';
import type { ApiKeyRecord } from '../store/api-keys.ts';
import type { AuditActor } from '../store/audit.ts';
import { repositoriesOf, transaction, type Repositories } from '../store/repositories.ts';
import { ApiKeyRejectedError, InvalidInputError } from './errors.ts';

export type { ApiKeyRecord } from '../store/api-keys.ts';

export const API_KEY_SCOPES = ['directory:read', 'events:read', 'webhooks:manage', 'tenants:manage'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/** Recognisable by secret scanners; followed by 32 random bytes in base64url (256 bits). */
export const API_KEY_PREFIX = 'roster_sk_';
const SECRET_BYTES = 32;
const KEY_PATTERN = new RegExp(`^${API_KEY_PREFIX}[A-Za-z0-9_-]{43}$`);
/** How much of a key lists show, so people can tell keys apart. */
const SHOWN_PREFIX_LENGTH = API_KEY_PREFIX.length + 6;
/** A key's last use is written at most this often. */
const LAST_USED_COARSENESS_MS = 60_000;
const MAX_NAME_LENGTH = 100;

/**
 * SHA-256, not a password hash: the key is 256 random bits, so there is no
 * dictionary to try and a slow hash would only slow every request. The hash is
 * also the lookup key (unique index), so a request costs one indexed read.
 */
function hashKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

export interface NewKeyInput {
  name: string;
  scopes: readonly string[];
  tenantId?: string | null;
}

/**
 * API keys: created (shown once), listed and revoked by operators from the
 * console, the CLI or the API, each change audited in its own transaction;
 * and authentication of a presented key.
 */
export class ApiKeys {
  readonly #store: Store;
  readonly #repos: Repositories;
  readonly #now: () => number;
  /** When this process last wrote each key's use: spares the database a write per request. */
  readonly #touched = new Map<string, number>();

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#repos = repositoriesOf(store);
    this.#now = now;
  }

  /** Creates a key; `secret` is the only time the key itself exists outside the caller's hands. */
  async create(input: NewKeyInput, actor: AuditActor): Promise<{ key: ApiKeyRecord; secret: string }> {
    const name = input.name.trim();
    if (name.length === 0 || name.length > MAX_NAME_LENGTH || /[\p{Cc}]/u.test(name)) throw new InvalidInputError('name', `"name" must be 1 to ${MAX_NAME_LENGTH} printable characters.`);
    const scopes = [...new Set(input.scopes)];
    if (scopes.length === 0) throw new InvalidInputError('scopes', `"scopes" must list at least one of: ${API_KEY_SCOPES.join(', ')}.`);
    const unknown = scopes.find((s) => !(API_KEY_SCOPES as readonly string[]).includes(s));
    if (unknown !== undefined) throw new InvalidInputError('scopes', `"scopes" has "${unknown}", which is not one of: ${API_KEY_SCOPES.join(', ')}.`);
    const tenantId = input.tenantId ? input.tenantId.trim().toLowerCase() : null;
    const secret = API_KEY_PREFIX + randomBytes(SECRET_BYTES).toString('base64url');
    const now = this.#now();
    const key = await transaction(this.#store, async (tx) => {
      if (tenantId !== null && !(await tx.tenants.get(tenantId))) throw new InvalidInputError('tenant_id', '"tenant_id" is not a tenant of Roster.');
      const created = await tx.apiKeys.create(
        { id: `key_${randomUUID().replaceAll('-', '').slice(0, 16)}`, name, prefix: secret.slice(0, SHOWN_PREFIX_LENGTH), keyHash: hashKey(secret).toString('base64url'), scopes, tenantId, createdBy: actor.id },
        now,
      );
      await tx.audit.record({ actor, action: 'api_key.create', tenantId, target: created.id, detail: { name, scopes } }, now);
      return created;
    });
    return { key, secret };
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.#repos.apiKeys.list();
  }

  get(id: string): Promise<ApiKeyRecord | undefined> {
    return this.#repos.apiKeys.get(id);
  }

  /** Revokes at once (the next request with it is refused); false when there is no such key or it was revoked already. */
  async revoke(id: string, actor: AuditActor): Promise<boolean> {
    const now = this.#now();
    return transaction(this.#store, async (tx) => {
      const key = await tx.apiKeys.get(id);
      if (!key || !(await tx.apiKeys.revoke(id, now))) return false;
      await tx.audit.record({ actor, action: 'api_key.revoke', tenantId: key.tenantId, target: id, detail: { name: key.name } }, now);
      return true;
    });
  }

  /** The key behind a presented secret, or ApiKeyRejectedError (unknown, malformed, truncated or revoked alike). */
  async authenticate(presented: string): Promise<ApiKeyRecord> {
    if (!KEY_PATTERN.test(presented)) throw new ApiKeyRejectedError();
    const hash = hashKey(presented);
    const stored = await this.#repos.apiKeys.findByHash(hash.toString('base64url'));
    // The lookup found the row by its hash; comparing the bytes again in constant time keeps the decision itself free of timing.
    if (!stored || !timingSafeEqual(Buffer.from(stored.keyHash, 'base64url'), hash) || stored.revokedAt !== null) throw new ApiKeyRejectedError();
    const now = this.#now();
    const last = this.#touched.get(stored.id) ?? stored.lastUsedAt ?? 0;
    if (now - last >= LAST_USED_COARSENESS_MS) {
      this.#touched.set(stored.id, now);
      await this.#repos.apiKeys.touch(stored.id, now, LAST_USED_COARSENESS_MS);
    }
    const { keyHash: _hash, ...key } = stored;
    return key;
  }
}
