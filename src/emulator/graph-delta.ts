import { GraphError } from './errors.ts';
import type { GraphUserProperty, Tenant } from './model.ts';

/**
 * Paging and delta state travels in opaque tokens, as in Graph: base64url JSON.
 * Clients must not look inside; the emulator folds every query option into them.
 */
export type GraphToken =
  /** `/users` paging: after ordinal `o`, `n` per page. */
  | { k: 'u'; t: string; o: number; s: string; n: number }
  /** Delta, first (full) round: users after ordinal `o`; `seq` is the tenant's sequence when the round began. */
  | { k: 'df'; t: string; seq: number; o: number; s: string; m: boolean; n: number; f: number; iat: number }
  /** Delta, a round of changes: index `i` into the changes between `from` (exclusive) and `to` (inclusive). */
  | { k: 'dc'; t: string; from: number; to: number; i: number; s: string; m: boolean; n: number; f: number; iat: number }
  /**
   * Delta link: changes after `seq`. `f` is the tenant's delta floor and `iat`
   * the emulator time (ms) when the round began, for expiry.
   */
  | { k: 'dt'; t: string; seq: number; s: string; m: boolean; n: number; f: number; iat: number }
  /** Deleted items paging: from index `i` of the tenant's soft-deleted users, `n` per page. */
  | { k: 'di'; t: string; i: number; s: string; n: number }
  /** `/groups` paging: after group ordinal `o`, `n` per page. */
  | { k: 'g'; t: string; o: number; s: string; n: number }
  /** Membership listings (`v`: members, transitiveMembers, memberOf, transitiveMemberOf) of object `id`, from index `i`. */
  | { k: 'gl'; t: string; v: string; id: string; i: number; s: string; n: number }
  /**
   * Groups delta, a page of a round: unit `p` of the round over the group change
   * log between `from` (exclusive; -1 for a first, full round) and `to` (inclusive).
   */
  | { k: 'gr'; t: string; from: number; to: number; p: number; s: string; m: boolean; n: number; f: number; iat: number }
  /** Groups delta link: group changes after `seq`. */
  | { k: 'gt'; t: string; seq: number; s: string; m: boolean; n: number; f: number; iat: number };

export function encodeToken(token: GraphToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

/** Decodes a token; undefined when it is not one of ours or is damaged. */
export function decodeToken(raw: string): GraphToken | undefined {
  try {
    const value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (typeof value !== 'object' || value === null || typeof value.t !== 'string' || typeof value.s !== 'string') return undefined;
    const ints = (...keys: string[]) => keys.every((key) => Number.isSafeInteger(value[key]));
    switch (value.k) {
      case 'u':
        return ints('o', 'n') ? (value as GraphToken) : undefined;
      case 'df':
        return ints('seq', 'o', 'n', 'f', 'iat') && typeof value.m === 'boolean' ? (value as GraphToken) : undefined;
      case 'dc':
        return ints('from', 'to', 'i', 'n', 'f', 'iat') && typeof value.m === 'boolean' ? (value as GraphToken) : undefined;
      case 'dt':
        return ints('seq', 'n', 'f', 'iat') && typeof value.m === 'boolean' ? (value as GraphToken) : undefined;
      case 'di':
        return ints('i', 'n') ? (value as GraphToken) : undefined;
      case 'g':
        return ints('o', 'n') ? (value as GraphToken) : undefined;
      case 'gl':
        return ints('i', 'n') && typeof value.v === 'string' && typeof value.id === 'string' ? (value as GraphToken) : undefined;
      case 'gr':
        return ints('from', 'to', 'p', 'n', 'f', 'iat') && typeof value.m === 'boolean' ? (value as GraphToken) : undefined;
      case 'gt':
        return ints('seq', 'n', 'f', 'iat') && typeof value.m === 'boolean' ? (value as GraphToken) : undefined;
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

/** Days a delta token lives, as for directory objects in Graph. */
export const DELTA_TOKEN_LIFETIME_MS = 7 * 24 * 3600 * 1000;

/**
 * Whether a delta state is gone: too old, or the tenant's delta floor rose past
 * it after it was issued (a state issued after the floor was raised stays good).
 */
export function deltaStateExpired(tenant: Tenant, state: { seq: number; f: number; iat: number }, nowMs: number): boolean {
  if (nowMs - state.iat > DELTA_TOKEN_LIFETIME_MS) return true;
  return state.seq < tenant.deltaFloor && state.f < tenant.deltaFloor;
}

/** Graph's answer to an expired or unknown delta state: 410 with where to start again. */
export function syncStateNotFound(location: string): GraphError {
  return new GraphError(410, 'syncStateNotFound', 'The sync state is not found or expired; a resync is required.', { location });
}

/** Users changed in a window of the change log, each with the union of its changed properties (null: all). */
export interface ChangeSet {
  ids: string[];
  changed: Map<string, Set<GraphUserProperty> | null>;
}

/** Index of the first change-log entry with a sequence number above `seq` (the log is ordered by seq). */
export function firstEntryAfter(log: readonly { seq: number }[], seq: number): number {
  let lo = 0;
  let hi = log.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (log[mid]!.seq <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function computeChangeSet(tenant: Tenant, from: number, to: number): ChangeSet {
  const changed = new Map<string, Set<GraphUserProperty> | null>();
  const log = tenant.changeLog;
  for (let i = firstEntryAfter(log, from); i < log.length; i++) {
    const entry = log[i]!;
    if (entry.seq > to) break;
    const seen = changed.get(entry.userId);
    if (seen === null) continue;
    if (!entry.changed) {
      changed.set(entry.userId, null);
    } else if (seen) {
      for (const prop of entry.changed) seen.add(prop);
    } else {
      changed.set(entry.userId, new Set(entry.changed));
    }
  }
  return { ids: [...changed.keys()], changed };
}

const CHANGE_SETS_PER_TENANT = 16;

/**
 * The change set of a delta round is computed once and reused by every page of
 * that round (and by other clients holding the same token), in a small LRU.
 */
export class ChangeSetCache {
  readonly #byTenant = new WeakMap<Tenant, Map<string, ChangeSet>>();

  get(tenant: Tenant, from: number, to: number): ChangeSet {
    let sets = this.#byTenant.get(tenant);
    if (!sets) {
      sets = new Map();
      this.#byTenant.set(tenant, sets);
    }
    const key = `${from}:${to}`;
    let set = sets.get(key);
    if (set) {
      sets.delete(key);
    } else {
      set = computeChangeSet(tenant, from, to);
      if (sets.size >= CHANGE_SETS_PER_TENANT) sets.delete(sets.keys().next().value!);
    }
    sets.set(key, set);
    return set;
  }
}
