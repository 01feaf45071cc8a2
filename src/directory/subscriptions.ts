import type { Logger } from 'pino';
import type { EntraApp } from '../identity/entra-app.ts';
import { GraphError, graphErrorBody } from '../identity/graph-errors.ts';
import type { OutboundHttp } from '../identity/http.ts';
import type { Store } from '../store/database.ts';
import { GraphSubscriptionRepository, type GraphSubscriptionRecord } from '../store/graph-subscriptions.ts';
import { hashToken, randomToken } from '../store/tokens.ts';

/**
 * What Roster subscribes to for each tenant. A notification of either only
 * schedules the tenant's debounced delta round (users, then groups), so the
 * receiver needs nothing per resource.
 */
export interface SubscribedResource {
  resource: string;
  changeType: string;
  /** Graph's longest lifetime for the resource, in minutes. */
  maxLifetimeMinutes: number;
  /**
   * Subscribed only while the tenant's groups are synced and readable: a
   * tenant whose group sync reports a missing permission has none (Graph
   * would refuse it with 403) until a new consent lets groups sync again.
   */
  needsSyncedGroups?: boolean;
}

export const SUBSCRIBED_RESOURCES: readonly SubscribedResource[] = [
  { resource: 'users', changeType: 'updated,deleted', maxLifetimeMinutes: 41_760 },
  { resource: 'groups', changeType: 'updated,deleted', maxLifetimeMinutes: 41_760, needsSyncedGroups: true },
];

/** Where Graph posts notifications and lifecycle events, under the public notification URL. */
export const NOTIFICATION_PATH = '/graph/notifications';
export const LIFECYCLE_PATH = '/graph/lifecycle';

/** Asked a little short of Graph's maximum, so clocks a minute apart never make Graph refuse it. */
const LIFETIME_MARGIN_MS = 10 * 60_000;
/** A creation claimed and never finished (a crashed process), or one that failed, is tried again after this. */
const RETRY_CREATION_MS = 5 * 60_000;
/** Creation waits on Graph's validation handshake, which may take 10 s. */
const GRAPH_TIMEOUT_MS = 30_000;

export interface GraphSubscriptionsOptions {
  store: Store;
  entra: EntraApp;
  http: OutboundHttp;
  graphBaseUrl: URL;
  /** Public base URL Graph calls (NOTIFICATION_URL). */
  notificationUrl: URL;
  logger: Logger;
  now?: () => number;
  resources?: readonly SubscribedResource[];
}

/** Graph refused or failed a subscription request. */
export class SubscriptionRequestError extends GraphError {}

export interface MaintenanceReport {
  created: number;
  renewed: number;
  removed: number;
  failed: number;
}

/**
 * Keeps each active tenant's Graph subscriptions alive (rule 1): created
 * where missing, renewed once less than half their lifetime remains,
 * reauthorized when Graph asks, deleted once the tenant is no longer active.
 * `maintain()` runs at every scheduler tick; sign-up and lifecycle events call
 * `ensure` and `maintain` at once.
 */
export class GraphSubscriptions {
  readonly #options: GraphSubscriptionsOptions;
  readonly #rows: GraphSubscriptionRepository;
  readonly #now: () => number;
  readonly #resources: readonly SubscribedResource[];
  #maintaining: Promise<MaintenanceReport> | undefined;
  #maintainingNext: Promise<MaintenanceReport> | undefined;
  #checkedAtStart = false;
  /** Nothing is created until the endpoints Graph validates are up: `release()` says so. */
  #held = true;

  constructor(options: GraphSubscriptionsOptions) {
    this.#options = options;
    this.#rows = new GraphSubscriptionRepository(options.store.db);
    this.#now = options.now ?? Date.now;
    this.#resources = options.resources ?? SUBSCRIBED_RESOURCES;
  }

  /**
   * Lets subscriptions be made: called once this process serves the receiving
   * endpoints (Graph validates them on creation), or at once by a worker whose
   * notification URL another process serves. Runs a first pass.
   */
  release(): Promise<MaintenanceReport> {
    this.#held = false;
    return this.maintain();
  }

  /**
   * One pass of rule 1 over every tenant, starting after the call: a call made
   * while a pass runs waits for one more, shared with every call made meanwhile.
   */
  maintain(): Promise<MaintenanceReport> {
    if (this.#held) return Promise.resolve({ created: 0, renewed: 0, removed: 0, failed: 0 });
    if (this.#maintaining) return (this.#maintainingNext ??= this.#maintaining.catch(() => undefined).then(() => this.#startPass()));
    return this.#startPass();
  }

  #startPass(): Promise<MaintenanceReport> {
    this.#maintainingNext = undefined;
    const pass = this.#maintainOnce().finally(() => {
      if (this.#maintaining === pass) this.#maintaining = undefined;
    });
    this.#maintaining = pass;
    return pass;
  }

  async #maintainOnce(): Promise<MaintenanceReport> {
    const report: MaintenanceReport = { created: 0, renewed: 0, removed: 0, failed: 0 };
    const count = (done: boolean, as: 'created' | 'renewed') => (done ? (report[as] += 1) : (report.failed += 1));
    if (!this.#checkedAtStart) {
      this.#checkedAtStart = true;
      for (const row of await this.#rows.all()) if (!(await this.#stillAtGraph(row))) report.removed += 1;
    }
    for (const row of await this.#rows.ofInactiveTenants()) {
      await this.remove(row);
      report.removed += 1;
    }
    for (const kind of this.#resources.filter((r) => r.needsSyncedGroups)) {
      for (const row of await this.#rows.withoutGroupPermission(kind.resource)) {
        await this.remove(row);
        report.removed += 1;
      }
    }
    for (const kind of this.#resources) {
      for (const tenantId of await this.#rows.activeTenantsWithout(kind.resource, { groupsSynced: kind.needsSyncedGroups === true })) count(await this.#create(tenantId, kind), 'created');
    }
    const now = this.#now();
    for (const row of await this.#rows.all()) {
      if (row.state === 'failing' && row.subscriptionId === null && now - row.updatedAt >= RETRY_CREATION_MS) {
        const kind = this.#resources.find((r) => r.resource === row.resource);
        if (kind) count(await this.#create(row.tenantId, kind), 'created');
      } else if (row.subscriptionId !== null && row.state === 'reauthorizing') {
        count(await this.reauthorize(row.subscriptionId), 'renewed');
      } else if (row.subscriptionId !== null && renewalDue(row, now)) {
        count(await this.#renew(row), 'renewed');
      }
    }
    return report;
  }

  /** Creates the tenant's missing subscriptions (after sign-up, and again once its groups are synced); present ones are left alone. */
  async ensure(tenantId: string): Promise<void> {
    if (this.#held) return;
    for (const kind of this.#resources) {
      if (kind.needsSyncedGroups && !(await this.#rows.groupsSynced(tenantId))) continue;
      if (!(await this.#rows.get(tenantId, kind.resource))) await this.#create(tenantId, kind);
    }
  }

  /** Answers Graph's `reauthorizationRequired`: reauthorize, or renew when Graph no longer knows the request. */
  async reauthorize(subscriptionId: string): Promise<boolean> {
    const row = await this.#rows.owner(subscriptionId);
    if (!row) return false;
    try {
      await this.#graph(row.tenantId, 'POST', `/subscriptions/${encodeURIComponent(subscriptionId)}/reauthorize`);
      await this.#rows.reauthorized(subscriptionId, this.#now());
      this.#options.logger.info({ tenant: row.tenantId, resource: row.resource }, 'Graph subscription reauthorized');
      return true;
    } catch (err) {
      return this.#renew(row, err);
    }
  }

  /** Deletes the subscription at Graph (when Graph still answers for the tenant) and forgets it. */
  async remove(row: GraphSubscriptionRecord): Promise<void> {
    if (row.subscriptionId) {
      try {
        await this.#graph(row.tenantId, 'DELETE', `/subscriptions/${encodeURIComponent(row.subscriptionId)}`);
      } catch (err) {
        // A disconnected tenant's token is refused and a lapsed subscription is gone: either way it delivers nothing more, and notifications for it are dropped.
        this.#options.logger.info({ tenant: row.tenantId, resource: row.resource, err: (err as Error).message }, 'Graph subscription could not be deleted at Graph; forgotten');
      }
    }
    await this.#rows.remove(row.tenantId, row.resource);
    this.#options.logger.info({ tenant: row.tenantId, resource: row.resource }, 'Graph subscription removed');
  }

  async #create(tenantId: string, kind: SubscribedResource): Promise<boolean> {
    const clientState = randomToken();
    const now = this.#now();
    if (!(await this.#rows.claimCreation(tenantId, kind.resource, hashToken(clientState), now, RETRY_CREATION_MS))) return false;
    const base = this.#options.notificationUrl;
    try {
      const created = (await this.#graph(tenantId, 'POST', '/subscriptions', {
        changeType: kind.changeType,
        notificationUrl: new URL(NOTIFICATION_PATH, base).toString(),
        lifecycleNotificationUrl: new URL(LIFECYCLE_PATH, base).toString(),
        resource: kind.resource,
        expirationDateTime: new Date(this.#expiry(kind, now)).toISOString(),
        clientState,
      })) as { id?: unknown; expirationDateTime?: unknown };
      if (typeof created.id !== 'string' || typeof created.expirationDateTime !== 'string') throw new SubscriptionRequestError(502, 'InvalidAnswer', 'Graph answered a subscription without id or expiry');
      await this.#rows.created(tenantId, kind.resource, created.id, Date.parse(created.expirationDateTime), this.#now());
      this.#options.logger.info({ tenant: tenantId, resource: kind.resource, expires: created.expirationDateTime }, 'Graph subscription created');
      return true;
    } catch (err) {
      await this.#rows.failed(tenantId, kind.resource, (err as Error).message, this.#now());
      this.#options.logger.warn({ tenant: tenantId, resource: kind.resource, err: (err as Error).message }, 'Graph subscription could not be created; scheduled rounds go on, and it is tried again later');
      return false;
    }
  }

  /**
   * At start-up: Graph (or a restarted emulator) may have dropped a
   * subscription while Roster was away; a 404 forgets the row, so it is
   * created again in the same pass.
   */
  async #stillAtGraph(row: GraphSubscriptionRecord): Promise<boolean> {
    if (!row.subscriptionId) return true;
    try {
      await this.#graph(row.tenantId, 'GET', `/subscriptions/${encodeURIComponent(row.subscriptionId)}`);
      return true;
    } catch (err) {
      if (!(err instanceof SubscriptionRequestError && err.graphStatus === 404)) return true;
      await this.#rows.remove(row.tenantId, row.resource);
      this.#options.logger.info({ tenant: row.tenantId, resource: row.resource }, 'Graph no longer has the subscription; creating it again');
      return false;
    }
  }

  /** Renewal; a subscription Graph no longer knows (404) is created afresh. */
  async #renew(row: GraphSubscriptionRecord, cause?: unknown): Promise<boolean> {
    const kind = this.#resources.find((r) => r.resource === row.resource);
    if (!kind || !row.subscriptionId) return false;
    try {
      const renewed = (await this.#graph(row.tenantId, 'PATCH', `/subscriptions/${encodeURIComponent(row.subscriptionId)}`, {
        expirationDateTime: new Date(this.#expiry(kind, this.#now())).toISOString(),
      })) as { expirationDateTime?: unknown };
      if (typeof renewed.expirationDateTime !== 'string') throw new SubscriptionRequestError(502, 'InvalidAnswer', 'Graph answered a renewal without expiry');
      await this.#rows.renewed(row.subscriptionId, Date.parse(renewed.expirationDateTime), this.#now());
      this.#options.logger.info({ tenant: row.tenantId, resource: row.resource, expires: renewed.expirationDateTime, ...(cause ? { instead: (cause as Error).message } : {}) }, 'Graph subscription renewed');
      return true;
    } catch (err) {
      if (err instanceof SubscriptionRequestError && err.graphStatus === 404) {
        await this.#rows.remove(row.tenantId, row.resource);
        return this.#create(row.tenantId, kind);
      }
      await this.#rows.failed(row.tenantId, row.resource, (err as Error).message, this.#now());
      this.#options.logger.warn({ tenant: row.tenantId, resource: row.resource, err: (err as Error).message }, 'Graph subscription could not be renewed; tried again at the next tick');
      return false;
    }
  }

  #expiry(kind: SubscribedResource, now: number): number {
    return now + kind.maxLifetimeMinutes * 60_000 - LIFETIME_MARGIN_MS;
  }

  async #graph(tenantId: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const send = async (forceRefresh: boolean) => {
      const { accessToken } = await this.#options.entra.appToken(tenantId, { forceRefresh });
      return this.#options.http.fetch(new URL(`/v1.0${path}`, this.#options.graphBaseUrl), {
        method,
        headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(GRAPH_TIMEOUT_MS),
      });
    };
    let response = await send(false);
    // A cached token can be refused before its expiry (clock skew): only a new one tells whether the refusal stands.
    if (response.status === 401) {
      await response.arrayBuffer();
      response = await send(true);
    }
    const text = await response.text();
    if (!response.ok) {
      // not Graph's envelope: the status says enough
      const body = graphErrorBody(text);
      const status = `HTTP ${response.status}`;
      const message = body.code !== undefined || body.message !== undefined ? `${body.code ?? status}: ${body.message ?? ''}` : status;
      throw new SubscriptionRequestError(response.status, body.code ?? status, `Graph answered ${method} /subscriptions with ${message}`);
    }
    return text ? (JSON.parse(text) as unknown) : {};
  }
}

/** Less than half the lifetime left (counted from the last renewal). */
export function renewalDue(row: Pick<GraphSubscriptionRecord, 'expiresAt' | 'lastRenewedAt'>, now: number): boolean {
  if (row.expiresAt === null) return false;
  const renewedAt = row.lastRenewedAt ?? now;
  return now >= renewedAt + (row.expiresAt - renewedAt) / 2;
}
