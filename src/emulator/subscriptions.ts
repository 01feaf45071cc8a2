import { randomUUID } from 'node:crypto';
import type { Clock } from './clock.ts';
import { GraphError } from './errors.ts';
import { checkedUrl, postJson, validateEndpoint } from './notification-endpoints.ts';
import type { FaultInjector } from './faults.ts';
import { READ_GROUPS_ROLES, READ_USERS_ROLES } from './graph-auth.ts';
import type { DirectoryChange, Tenant } from './model.ts';

/**
 * What can be subscribed to. A resource collection named here gets
 * subscriptions and notifications as soon as its changes reach
 * `Subscriptions.notify` through the `Directory` listener, which both the
 * users' and the groups' change logs call. Each needs the permission that
 * reads the collection through Graph.
 */
export interface SubscribableResource {
  /** `@odata.type` of the notifications' `resourceData`. */
  odataType: string;
  /** `resource` and `@odata.id` of a notification about object `id`, written as Graph writes them. */
  pathOf: (id: string) => string;
  /** Longest lifetime Graph grants, in minutes. */
  maxLifetimeMinutes: number;
  /** Application permissions, any one of which lets an app subscribe. */
  roles: readonly string[];
  /** Change types Graph supports for it. */
  changeTypes: readonly string[];
}

export const SUBSCRIBABLE_RESOURCES: Record<string, SubscribableResource> = {
  users: {
    odataType: '#Microsoft.Graph.User',
    pathOf: (id) => `Users/${id}`,
    maxLifetimeMinutes: 41_760,
    roles: READ_USERS_ROLES,
    changeTypes: ['updated', 'deleted'],
  },
  groups: {
    odataType: '#Microsoft.Graph.Group',
    pathOf: (id) => `Groups('${id}')`,
    maxLifetimeMinutes: 41_760,
    roles: READ_GROUPS_ROLES,
    changeTypes: ['updated', 'deleted'],
  },
};

/** Graph's quotas: per app per tenant, per tenant across apps, per app overall. */
export const SUBSCRIPTION_QUOTAS = { perAppPerTenant: 100, perTenant: 1_000, perApp: 50_000 } as const;
export const CLIENT_STATE_MAX = 128;
/** A notification answered later than this counts as failed and is retried. */
export const DELIVERY_TIMEOUT_MS = 3_000;
/** Graph retries a failed delivery for up to four hours, measured on the emulator's clock (tests move it to reach the end). */
export const RETRY_WINDOW_MS = 4 * 3_600_000;
/** Real waits between retries: short, so the four hours compress into seconds unless the clock is moved. */
const RETRY_BASE_MS = 250;
const RETRY_MAX_MS = 8_000;
const MAX_ATTEMPTS = 30;
/** Changes within this window travel in one request. */
const BATCH_WINDOW_MS = 50;
const BATCH_MAX = 1_000;

export interface Subscription {
  id: string;
  tenantId: string;
  appId: string;
  resource: string;
  changeTypes: string[];
  notificationUrl: string;
  lifecycleNotificationUrl: string | null;
  clientState: string | null;
  expiresAtMs: number;
  creatorId: string;
  /** A `reauthorizationRequired` was sent and not yet answered: nothing is delivered meanwhile. */
  reauthorizationRequired: boolean;
  createdAtMs: number;
  stats: { delivered: number; failedAttempts: number; dropped: number; retried: number };
}

export interface NotificationItem {
  subscriptionId: string;
  subscriptionExpirationDateTime: string;
  changeType: string;
  resource: string;
  resourceData: { '@odata.type': string; '@odata.id': string; id: string; organizationId: string };
  clientState: string | null;
  tenantId: string;
}

export interface SubscriptionCaller {
  tenant: Tenant;
  appId: string;
  creatorId: string;
  roles: ReadonlySet<string>;
}

export interface NewSubscription {
  changeType?: unknown;
  notificationUrl?: unknown;
  lifecycleNotificationUrl?: unknown;
  resource?: unknown;
  expirationDateTime?: unknown;
  clientState?: unknown;
}

function invalid(message: string): GraphError {
  return new GraphError(400, 'InvalidRequest', message);
}

/** Graph accepts `users` and `/users`; the key of `SUBSCRIBABLE_RESOURCES`. */
function resourceKey(raw: string): string {
  return raw.replace(/^\//, '').toLowerCase();
}

/**
 * Graph subscriptions of the emulator: created with the validation handshake,
 * renewed, reauthorized and deleted through Graph; notified of directory
 * changes, which are delivered in batches with Graph's retries. Kept in memory
 * only: a restarted emulator has none, as if Graph had removed them, and a
 * subscriber renewing one learns so from the 404.
 */
export class Subscriptions {
  readonly #byId = new Map<string, Subscription>();
  readonly #clock: Clock;
  readonly #faults: FaultInjector;
  readonly #pending = new Map<string, NotificationItem[]>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #closing = new AbortController();

  constructor(clock: Clock, faults: FaultInjector) {
    this.#clock = clock;
    this.#faults = faults;
  }

  // ---- Graph operations ----------------------------------------------------

  async create(caller: SubscriptionCaller, body: NewSubscription): Promise<Subscription> {
    if (typeof body.resource !== 'string' || body.resource === '') throw invalid("The 'resource' property is required.");
    const key = resourceKey(body.resource);
    const kind = SUBSCRIBABLE_RESOURCES[key];
    if (!kind) throw invalid(`Resource '${body.resource}' is not supported for change notifications.`);
    if (!kind.roles.some((r) => caller.roles.has(r))) {
      throw new GraphError(403, 'ExtensionError', `Operation: Create; Exception: [Status Code: Forbidden; Reason: The caller lacks a permission to read ${key}.]`);
    }
    if (typeof body.changeType !== 'string' || body.changeType === '') throw invalid("The 'changeType' property is required.");
    const changeTypes = body.changeType.split(',').map((c) => c.trim());
    for (const type of changeTypes) {
      if (!kind.changeTypes.includes(type)) throw invalid(`Change type '${type}' is not supported for resource '${key}' (supported: ${kind.changeTypes.join(', ')}).`);
    }
    const notificationUrl = checkedUrl(body.notificationUrl, 'notificationUrl');
    const lifecycleNotificationUrl = body.lifecycleNotificationUrl === undefined || body.lifecycleNotificationUrl === null ? null : checkedUrl(body.lifecycleNotificationUrl, 'lifecycleNotificationUrl');
    const expiresAtMs = this.#checkedExpiry(body.expirationDateTime, kind);
    const clientState = checkedClientState(body.clientState);
    this.#checkQuotas(caller);

    await validateEndpoint(notificationUrl, this.#closing.signal);
    if (lifecycleNotificationUrl) await validateEndpoint(lifecycleNotificationUrl, this.#closing.signal);
    this.#checkQuotas(caller); // another creation may have finished during the handshake

    const subscription: Subscription = {
      id: randomUUID(),
      tenantId: caller.tenant.id,
      appId: caller.appId,
      resource: key,
      changeTypes,
      notificationUrl,
      lifecycleNotificationUrl,
      clientState,
      expiresAtMs,
      creatorId: caller.creatorId,
      reauthorizationRequired: false,
      createdAtMs: this.#clock.nowMs(),
      stats: { delivered: 0, failedAttempts: 0, dropped: 0, retried: 0 },
    };
    this.#byId.set(subscription.id, subscription);
    return subscription;
  }

  /** The caller's own subscriptions in its tenant. */
  list(caller: Pick<SubscriptionCaller, 'tenant' | 'appId'>): Subscription[] {
    return [...this.#byId.values()].filter((s) => s.tenantId === caller.tenant.id && s.appId === caller.appId && !this.#expired(s));
  }

  /** One of the caller's subscriptions; another app's or tenant's is as absent as an unknown one. */
  get(caller: Pick<SubscriptionCaller, 'tenant' | 'appId'>, id: string): Subscription {
    const subscription = this.#byId.get(id.toLowerCase());
    if (!subscription || subscription.tenantId !== caller.tenant.id || subscription.appId !== caller.appId || this.#expired(subscription)) {
      throw new GraphError(404, 'ResourceNotFound', `The object was not found.`);
    }
    return subscription;
  }

  /** Renewal (a new `expirationDateTime`) or a new `notificationUrl`; a lifecycle URL cannot be added afterwards. */
  async update(caller: SubscriptionCaller, id: string, patch: NewSubscription): Promise<Subscription> {
    const subscription = this.get(caller, id);
    for (const field of Object.keys(patch)) {
      if (!['expirationDateTime', 'notificationUrl', 'lifecycleNotificationUrl'].includes(field)) throw invalid(`The property '${field}' cannot be updated.`);
    }
    if (patch.lifecycleNotificationUrl !== undefined && subscription.lifecycleNotificationUrl === null) {
      throw invalid('lifecycleNotificationUrl cannot be added to an existing subscription; create a new one.');
    }
    const kind = SUBSCRIBABLE_RESOURCES[subscription.resource]!;
    const expiresAtMs = patch.expirationDateTime === undefined ? subscription.expiresAtMs : this.#checkedExpiry(patch.expirationDateTime, kind);
    const notificationUrl = patch.notificationUrl === undefined ? subscription.notificationUrl : checkedUrl(patch.notificationUrl, 'notificationUrl');
    const lifecycleNotificationUrl = patch.lifecycleNotificationUrl === undefined ? subscription.lifecycleNotificationUrl : checkedUrl(patch.lifecycleNotificationUrl, 'lifecycleNotificationUrl');
    if (notificationUrl !== subscription.notificationUrl) await validateEndpoint(notificationUrl, this.#closing.signal);
    if (lifecycleNotificationUrl && lifecycleNotificationUrl !== subscription.lifecycleNotificationUrl) await validateEndpoint(lifecycleNotificationUrl, this.#closing.signal);
    subscription.expiresAtMs = expiresAtMs;
    subscription.notificationUrl = notificationUrl;
    subscription.lifecycleNotificationUrl = lifecycleNotificationUrl;
    // A renewal answers a reauthorization request too.
    subscription.reauthorizationRequired = false;
    return subscription;
  }

  remove(caller: Pick<SubscriptionCaller, 'tenant' | 'appId'>, id: string): void {
    const subscription = this.get(caller, id);
    this.#byId.delete(subscription.id);
    this.#pending.delete(subscription.id);
  }

  reauthorize(caller: SubscriptionCaller, id: string): Subscription {
    const subscription = this.get(caller, id);
    if (!SUBSCRIBABLE_RESOURCES[subscription.resource]!.roles.some((r) => caller.roles.has(r))) {
      throw new GraphError(403, 'ExtensionError', 'Operation: Reauthorize; Exception: [Status Code: Forbidden; Reason: The caller no longer holds a permission for this resource.]');
    }
    subscription.reauthorizationRequired = false;
    return subscription;
  }

  // ---- control -------------------------------------------------------------

  all(): Subscription[] {
    return [...this.#byId.values()];
  }

  find(id: string): Subscription | undefined {
    return this.#byId.get(id.toLowerCase());
  }

  /** Sends `reauthorizationRequired` to the subscription's lifecycle URL; deliveries pause until it is reauthorized or renewed. */
  async requireReauthorization(id: string): Promise<{ delivered: boolean; status: number | null }> {
    const subscription = this.#byId.get(id.toLowerCase());
    if (!subscription) throw new GraphError(404, 'ResourceNotFound', `no subscription ${id}`);
    if (!subscription.lifecycleNotificationUrl) throw invalid(`subscription ${id} has no lifecycleNotificationUrl`);
    subscription.reauthorizationRequired = true;
    const body = {
      value: [
        {
          subscriptionId: subscription.id,
          subscriptionExpirationDateTime: new Date(subscription.expiresAtMs).toISOString(),
          tenantId: subscription.tenantId,
          clientState: subscription.clientState,
          lifecycleEvent: 'reauthorizationRequired',
        },
      ],
    };
    const status = await postJson(subscription.lifecycleNotificationUrl, body, this.#closing.signal).catch(() => null);
    return { delivered: status !== null && status >= 200 && status < 300, status };
  }

  // ---- delivery ------------------------------------------------------------

  /** The `Directory` listener: queues a notification for every live subscription that covers the change. */
  notify(change: DirectoryChange): void {
    const kind = SUBSCRIBABLE_RESOURCES[change.resource];
    if (!kind) return;
    for (const subscription of this.#byId.values()) {
      if (subscription.tenantId !== change.tenant.id || subscription.resource !== change.resource) continue;
      if (!subscription.changeTypes.includes(change.kind) || this.#expired(subscription)) continue;
      // An app whose consent was revoked reads nothing more of the tenant, notifications included.
      if (!change.tenant.servicePrincipals.has(subscription.appId)) continue;
      const queue = this.#pending.get(subscription.id) ?? [];
      if (queue.length === 0) this.#pending.set(subscription.id, queue);
      queue.push({
        subscriptionId: subscription.id,
        subscriptionExpirationDateTime: new Date(subscription.expiresAtMs).toISOString(),
        changeType: change.kind,
        resource: kind.pathOf(change.id),
        resourceData: { '@odata.type': kind.odataType, '@odata.id': kind.pathOf(change.id), id: change.id, organizationId: change.tenant.id },
        clientState: subscription.clientState,
        tenantId: subscription.tenantId,
      });
      if (queue.length === 1) this.#later(BATCH_WINDOW_MS, () => this.#flush(subscription.id));
    }
  }

  /** Stops retries and timers (the emulator is closing). */
  close(): void {
    this.#closing.abort();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  #flush(id: string): void {
    const queue = this.#pending.get(id);
    this.#pending.delete(id);
    const subscription = this.#byId.get(id);
    if (!queue || !subscription) return;
    for (let i = 0; i < queue.length; i += BATCH_MAX) void this.#deliver(subscription, queue.slice(i, i + BATCH_MAX));
  }

  async #deliver(subscription: Subscription, items: NotificationItem[]): Promise<void> {
    const fault = this.#faults.pick('notification', subscription.tenantId);
    if (fault?.kind === 'drop') {
      subscription.stats.dropped += items.length;
      return;
    }
    if (fault?.kind === 'delay') await this.#sleep(fault.delayMs ?? 1000);
    const firstAttemptAt = this.#clock.nowMs();
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (this.#closing.signal.aborted || !this.#byId.has(subscription.id) || this.#expired(subscription)) return;
      if (subscription.reauthorizationRequired) {
        subscription.stats.dropped += items.length;
        return;
      }
      const status = await postJson(subscription.notificationUrl, { value: items }, AbortSignal.any([this.#closing.signal, AbortSignal.timeout(DELIVERY_TIMEOUT_MS)])).catch(() => null);
      if (status !== null && status >= 200 && status < 300) {
        subscription.stats.delivered += items.length;
        return;
      }
      subscription.stats.failedAttempts += 1;
      if (this.#clock.nowMs() - firstAttemptAt >= RETRY_WINDOW_MS) break;
      subscription.stats.retried += 1;
      await this.#sleep(Math.min(RETRY_BASE_MS * 2 ** attempt, RETRY_MAX_MS));
    }
    subscription.stats.dropped += items.length;
  }

  #expired(subscription: Subscription): boolean {
    return subscription.expiresAtMs <= this.#clock.nowMs();
  }

  #checkedExpiry(raw: unknown, kind: SubscribableResource): number {
    if (typeof raw !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(raw) || Number.isNaN(Date.parse(raw))) throw invalid("'expirationDateTime' must be a date and time such as 2026-01-01T11:00:00.0000000Z.");
    const at = Date.parse(raw);
    const now = this.#clock.nowMs();
    if (at <= now) throw invalid('Subscription expiration can only be in the future.');
    if (at > now + kind.maxLifetimeMinutes * 60_000) {
      throw invalid(`Subscription expiration can only be ${kind.maxLifetimeMinutes} minutes in the future.`);
    }
    return at;
  }

  #checkQuotas(caller: SubscriptionCaller): void {
    let appInTenant = 0;
    let tenant = 0;
    let app = 0;
    for (const s of this.#byId.values()) {
      if (this.#expired(s)) continue;
      if (s.appId === caller.appId) app += 1;
      if (s.tenantId === caller.tenant.id) tenant += 1;
      if (s.appId === caller.appId && s.tenantId === caller.tenant.id) appInTenant += 1;
    }
    const over =
      appInTenant >= SUBSCRIPTION_QUOTAS.perAppPerTenant ? `${SUBSCRIPTION_QUOTAS.perAppPerTenant} subscriptions per app in a tenant`
      : tenant >= SUBSCRIPTION_QUOTAS.perTenant ? `${SUBSCRIPTION_QUOTAS.perTenant} subscriptions per tenant`
      : app >= SUBSCRIPTION_QUOTAS.perApp ? `${SUBSCRIPTION_QUOTAS.perApp} subscriptions per app`
      : null;
    if (over) throw new GraphError(403, 'ExtensionError', `Operation: Create; Exception: [Status Code: Forbidden; Reason: Subscription quota exceeded (${over}).]`);
  }

  #later(ms: number, work: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      work();
    }, ms);
    this.#timers.add(timer);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#later(ms, resolve));
  }
}

function checkedClientState(raw: unknown): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'string') throw invalid("'clientState' must be a string.");
  if (raw.length > CLIENT_STATE_MAX) throw invalid(`'clientState' is limited to ${CLIENT_STATE_MAX} characters.`);
  return raw;
}

/** The subscription resource as Graph returns it. */
export function subscriptionJson(subscription: Subscription): Record<string, unknown> {
  return {
    id: subscription.id,
    resource: subscription.resource,
    applicationId: subscription.appId,
    changeType: subscription.changeTypes.join(','),
    clientState: subscription.clientState,
    notificationUrl: subscription.notificationUrl,
    notificationQueryOptions: null,
    lifecycleNotificationUrl: subscription.lifecycleNotificationUrl,
    expirationDateTime: new Date(subscription.expiresAtMs).toISOString(),
    creatorId: subscription.creatorId,
    includeResourceData: false,
    latestSupportedTlsVersion: 'v1_2',
    encryptionCertificate: null,
    encryptionCertificateId: null,
    notificationUrlAppId: null,
  };
}
