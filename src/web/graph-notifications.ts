import { timingSafeEqual } from 'node:crypto';
import type { GraphSubscriptionRepository, SubscriptionOwner } from '../store/graph-subscriptions.ts';
import { hashToken } from '../store/tokens.ts';

/** Why a notification was dropped; every one is counted in `/metrics`. */
export const DROP_REASONS = ['malformed', 'unknown_subscription', 'tenant_mismatch', 'client_state_mismatch', 'tenant_inactive', 'expired', 'unknown_event'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** What this process received at its Graph endpoints since it started (Prometheus counters). */
export class NotificationCounters {
  received = 0;
  accepted = 0;
  lifecycle = 0;
  readonly dropped = new Map<DropReason, number>(DROP_REASONS.map((r) => [r, 0]));

  drop(reason: DropReason): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
  }

  droppedTotal(): number {
    let n = 0;
    for (const v of this.dropped.values()) n += v;
    return n;
  }
}

/** What the receiving endpoints may do: record and schedule, nothing else (rule 2). */
export interface NotificationReceiver {
  subscriptions: GraphSubscriptionRepository;
  /** Schedules a debounced delta round of the tenant. */
  syncSoon(tenantId: string): void;
  /** Answers `reauthorizationRequired` in the background. */
  reauthorize(subscriptionId: string): void;
  counters: NotificationCounters;
  now(): number;
}

export type CheckedNotification = { ok: true; owner: SubscriptionOwner; item: Record<string, unknown> } | { ok: false; reason: DropReason };

/**
 * Trusts nothing in a notification: the subscription must be one Roster
 * created, for the tenant the notification names, with the clientState
 * Roster gave it (compared in constant time), for an active tenant, and not
 * past the expiry it carries (a replay of an old capture).
 */
export async function checkNotification(receiver: NotificationReceiver, raw: unknown): Promise<CheckedNotification> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'malformed' };
  const item = raw as Record<string, unknown>;
  const { subscriptionId, tenantId, clientState, subscriptionExpirationDateTime } = item;
  if (typeof subscriptionId !== 'string' || typeof tenantId !== 'string' || typeof clientState !== 'string' || subscriptionId.length > 100 || tenantId.length > 100) {
    return { ok: false, reason: 'malformed' };
  }
  const owner = await receiver.subscriptions.owner(subscriptionId.toLowerCase());
  if (!owner) return { ok: false, reason: 'unknown_subscription' };
  if (owner.tenantId !== tenantId.toLowerCase()) return { ok: false, reason: 'tenant_mismatch' };
  if (!sameHash(hashToken(clientState), owner.clientStateHash)) return { ok: false, reason: 'client_state_mismatch' };
  if (owner.tenantState !== 'active') return { ok: false, reason: 'tenant_inactive' };
  const now = receiver.now();
  const carriedExpiry = typeof subscriptionExpirationDateTime === 'string' ? Date.parse(subscriptionExpirationDateTime) : Number.NaN;
  if ((owner.expiresAt !== null && owner.expiresAt <= now) || (!Number.isNaN(carriedExpiry) && carriedExpiry <= now)) return { ok: false, reason: 'expired' };
  return { ok: true, owner, item };
}

function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
