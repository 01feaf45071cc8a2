import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { Store } from '../store/database.ts';
import type { AuditActor } from '../store/audit.ts';
import { repositoriesOf, transaction, type Repositories } from '../store/repositories.ts';
import type { DeliveryWithEvent, WebhookAttemptRow, WebhookEndpointRow } from '../store/webhooks.ts';
import { refusedHostReason, type WebhookAddressPolicy } from './address-policy.ts';
import { WebhookInputError, WebhookNotFoundError } from './errors.ts';
import { isEventType } from './types.ts';

/** Random bytes in a new secret: the Standard Webhooks range is 24 to 64. */
const SECRET_BYTES = 32;
const MAX_URL_LENGTH = 2048;
const MAX_DESCRIPTION_LENGTH = 200;

/** `whsec_` and the base64 of 32 random bytes, as Standard Webhooks libraries read it. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(SECRET_BYTES).toString('base64')}`;
}

/** Loopback hosts, the only ones a plain-http endpoint may name (rule 33). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '0:0:0:0:0:0:0:1';
}

/** An endpoint URL Roster may send to: https, or http to a loopback address; no credentials in it (rule 33); a host the address policy allows. */
export function checkWebhookUrl(value: string, policy: WebhookAddressPolicy = 'public-and-loopback'): URL {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_URL_LENGTH || !URL.canParse(value)) {
    throw new WebhookInputError('url', `url must be an absolute https URL of at most ${MAX_URL_LENGTH} characters`);
  }
  const url = new URL(value);
  if (url.username || url.password) throw new WebhookInputError('url', 'url must not carry a user name or password');
  if (url.hash) throw new WebhookInputError('url', 'url must not have a fragment');
  const refused = refusedHostReason(url.hostname, policy);
  if (refused) throw new WebhookInputError('url', `url: ${refused}`);
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url;
  throw new WebhookInputError('url', 'url must use https (plain http is accepted only for loopback addresses such as 127.0.0.1)');
}

export interface EndpointInput {
  url: string;
  description?: string | null;
  /** Empty or absent: every type. */
  eventTypes?: readonly string[];
  tenantId?: string | null;
}

/** An endpoint as the console and the API show it: never its secrets. */
export interface EndpointView {
  id: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  tenantId: string | null;
  enabled: boolean;
  disabledReason: string | null;
  /** Until when the previous secret still signs beside the current one (after a rotation). */
  previousSecretUntil: number | null;
  createdAt: number;
  updatedAt: number;
}

export function endpointView(row: WebhookEndpointRow, now: number): EndpointView {
  const rotating = row.previous_secret !== null && row.previous_secret_expires_at !== null && row.previous_secret_expires_at > now;
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    eventTypes: JSON.parse(row.event_types) as string[],
    tenantId: row.tenant_id,
    enabled: row.enabled === 1,
    disabledReason: row.disabled_reason,
    previousSecretUntil: rotating ? row.previous_secret_expires_at : null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The secrets that sign a delivery now: the current one, and the previous one during its window (rule 32). */
export function signingSecrets(row: Pick<WebhookEndpointRow, 'secret' | 'previous_secret' | 'previous_secret_expires_at'>, now: number): string[] {
  const previousLive = row.previous_secret !== null && row.previous_secret_expires_at !== null && row.previous_secret_expires_at > now;
  return previousLive ? [row.secret, row.previous_secret!] : [row.secret];
}

/**
 * Managing webhook endpoints: one place for the console, the CLI and the API,
 * so every surface checks the same rules, and each change is written to the
 * audit log (rule 35) in its own transaction, with who made it. A secret is
 * returned only by `create` and `rotateSecret`, once.
 */
export class WebhookEndpoints {
  readonly #store: Store;
  readonly #repos: Repositories;
  readonly #now: () => number;
  readonly #rotationWindowMs: number;
  readonly #addressPolicy: WebhookAddressPolicy;

  constructor(options: { store: Store; now?: () => number; rotationWindowMs?: number; addressPolicy?: WebhookAddressPolicy }) {
    this.#store = options.store;
    this.#repos = repositoriesOf(options.store);
    this.#now = options.now ?? Date.now;
    this.#rotationWindowMs = options.rotationWindowMs ?? 24 * 3_600_000;
    this.#addressPolicy = options.addressPolicy ?? 'public-and-loopback';
  }

  async create(input: EndpointInput, actor: AuditActor): Promise<{ endpoint: EndpointView; secret: string }> {
    const url = checkWebhookUrl(input.url, this.#addressPolicy);
    const eventTypes = [...new Set(input.eventTypes ?? [])];
    const unknown = eventTypes.find((type) => !isEventType(type));
    if (unknown !== undefined) throw new WebhookInputError('event_types', `event_types: ${JSON.stringify(unknown).slice(0, 80)} is not an event type`);
    const description = input.description?.trim() || null;
    if (description && description.length > MAX_DESCRIPTION_LENGTH) throw new WebhookInputError('description', `description must be at most ${MAX_DESCRIPTION_LENGTH} characters`);
    const tenantId = input.tenantId?.trim().toLowerCase() || null;
    if (tenantId && !(await this.#repos.tenants.get(tenantId))) throw new WebhookInputError('tenant_id', 'tenant_id names no tenant known to Roster');
    const secret = newWebhookSecret();
    const now = this.#now();
    const row = await transaction(this.#store, async (tx) => {
      const created = await tx.webhooks.createEndpoint({ id: `ep_${randomBytes(12).toString('base64url')}`, url: url.href, description, eventTypes, tenantId, secret, now });
      await tx.audit.record({ actor, action: 'webhook.create', tenantId, target: created.id, detail: { url: created.url, event_types: eventTypes } }, now);
      return created;
    });
    return { endpoint: endpointView(row, now), secret };
  }

  async list(options: { tenantId?: string } = {}): Promise<EndpointView[]> {
    const now = this.#now();
    return (await this.#repos.webhooks.listEndpoints(options)).map((row) => endpointView(row, now));
  }

  /** The endpoint, or undefined. */
  async find(id: string): Promise<EndpointView | undefined> {
    const row = await this.#repos.webhooks.getEndpoint(id);
    return row ? endpointView(row, this.#now()) : undefined;
  }

  async get(id: string): Promise<EndpointView> {
    const row = await this.#repos.webhooks.getEndpoint(id);
    if (!row) throw new WebhookNotFoundError(`no webhook endpoint ${id}`);
    return endpointView(row, this.#now());
  }

  async setEnabled(id: string, enabled: boolean, actor: AuditActor): Promise<EndpointView> {
    await this.#change(id, actor, enabled ? 'webhook.enable' : 'webhook.disable', (tx, now) => tx.webhooks.setEnabled(id, enabled, enabled ? null : 'disabled by an operator', now));
    return this.get(id);
  }

  /** A new secret, returned once; the old one keeps signing beside it for the rotation window. */
  async rotateSecret(id: string, actor: AuditActor): Promise<{ endpoint: EndpointView; secret: string }> {
    const secret = newWebhookSecret();
    await this.#change(id, actor, 'webhook.rotate_secret', (tx, now) => tx.webhooks.rotateSecret(id, secret, now + this.#rotationWindowMs, now));
    return { endpoint: await this.get(id), secret };
  }

  async delete(id: string, actor: AuditActor): Promise<void> {
    await this.#change(id, actor, 'webhook.delete', (tx) => tx.webhooks.deleteEndpoint(id));
  }

  /** One change of an endpoint and its audit entry, together; 404 when there is no such endpoint. */
  async #change(id: string, actor: AuditActor, action: string, change: (tx: Repositories, now: number) => Promise<boolean>): Promise<void> {
    const now = this.#now();
    await transaction(this.#store, async (tx) => {
      const endpoint = await tx.webhooks.getEndpoint(id);
      if (!endpoint || !(await change(tx, now))) throw new WebhookNotFoundError(`no webhook endpoint ${id}`);
      await tx.audit.record({ actor, action, tenantId: endpoint.tenant_id, target: id, detail: { url: endpoint.url } }, now);
    });
  }

  /** An endpoint's latest deliveries with their attempts, newest first (before the event sequence `before`, when given). */
  async deliveries(endpointId: string, options: { limit?: number; status?: DeliveryWithEvent['status']; before?: number } = {}): Promise<(DeliveryWithEvent & { attemptLog: WebhookAttemptRow[] })[]> {
    await this.get(endpointId);
    const deliveries = await this.#repos.webhooks.listDeliveries(endpointId, { limit: options.limit ?? 50, ...(options.status ? { status: options.status } : {}), ...(options.before === undefined ? {} : { before: options.before }) });
    const attempts = await this.#repos.webhooks.attemptsOf(deliveries.map((d) => d.id));
    return deliveries.map((delivery) => ({ ...delivery, attemptLog: attempts.filter((a) => a.delivery_id === delivery.id) }));
  }

  /** Sends a finished (failed or succeeded) delivery again, from the start of the schedule. */
  async replay(deliveryId: string, actor: AuditActor, options: { endpointId?: string } = {}): Promise<void> {
    const now = this.#now();
    await transaction(this.#store, async (tx) => {
      const delivery = await tx.webhooks.getDelivery(deliveryId);
      if (!delivery || (options.endpointId !== undefined && delivery.endpoint_id !== options.endpointId)) throw new WebhookNotFoundError(`no delivery ${deliveryId}`);
      if (!(await tx.webhooks.replay(deliveryId, now))) throw new WebhookInputError('delivery', 'the delivery is still pending: it is sent on its schedule');
      await tx.audit.record({ actor, action: 'webhook.replay', target: delivery.endpoint_id, detail: { delivery: deliveryId, event: delivery.event_id } }, now);
    });
  }
}
