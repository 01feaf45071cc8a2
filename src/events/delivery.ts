import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { hostname } from 'node:os';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import type { Store } from '../store/database.ts';
import { repositoriesOf, type Repositories } from '../store/repositories.ts';
import type { AttemptResult, ClaimedDelivery, WebhookEndpointRow } from '../store/webhooks.ts';
import { guardedLookup, RefusedAddressError, type WebhookAddressPolicy } from './address-policy.ts';
import { checkWebhookUrl, signingSecrets } from './endpoints.ts';
import { envelopeBody } from './types.ts';

/** When each attempt is made, after the one before: now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then the delivery has failed. */
export const RETRY_SCHEDULE_MS: readonly number[] = [0, 5_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000, 5 * 3_600_000, 10 * 3_600_000, 10 * 3_600_000];
/** A `Retry-After` beyond this is read as this: a receiver cannot park a delivery for ever. */
const MAX_RETRY_AFTER_MS = 24 * 3_600_000;
/** Bytes of a response read back, at most (rule 33); the rest is never read. */
export const RESPONSE_READ_CAP = 4096;
/** Characters of the response kept with the attempt. */
const EXCERPT_CHARS = 300;

export interface DeliveryWorkerOptions {
  store: Store;
  logger?: Logger;
  /** The clock of the schedule (tests move it); signatures always carry the real time, which receivers check. */
  now?: () => number;
  schedule?: readonly number[];
  /** No answer (headers and body) within this long is a failed attempt (default 15 s). */
  timeoutMs?: number;
  /** Requests in flight to one endpoint at a time (default 8). */
  perEndpoint?: number;
  /** Deliveries an endpoint's sender takes at a time (default 64). */
  batch?: number;
  pollMs?: number;
  /** Which addresses may be sent to (default `public-and-loopback`). */
  addressPolicy?: WebhookAddressPolicy;
  /** Name resolution for the connections (tests give their own). */
  resolve?: Parameters<typeof guardedLookup>[1];
}

/**
 * Sends webhook deliveries. Each endpoint has its own lane with its own
 * bounded concurrency, so a slow or dead endpoint delays only itself, and
 * nothing here runs inside a sync. Deliveries are rows leased to a sender
 * for a while: one that dies mid-send leaves them to be taken again once the
 * lease lapses, so each is sent at least once, across restarts and processes.
 */
export class DeliveryWorker {
  readonly #repos: Repositories;
  readonly #logger: Logger | undefined;
  readonly #now: () => number;
  readonly #schedule: readonly number[];
  readonly #timeoutMs: number;
  readonly #perEndpoint: number;
  readonly #batch: number;
  readonly #pollMs: number;
  readonly #leaseMs: number;
  readonly #addressPolicy: WebhookAddressPolicy;
  readonly #owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly #agent: Agent;
  readonly #lanes = new Map<string, Promise<void>>();
  readonly #keys = new Map<string, KeyObject>();
  #timer: NodeJS.Timeout | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #failing = false;

  constructor(options: DeliveryWorkerOptions) {
    this.#repos = repositoriesOf(options.store);
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#schedule = options.schedule ?? RETRY_SCHEDULE_MS;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.#perEndpoint = options.perEndpoint ?? 8;
    this.#batch = options.batch ?? 64;
    this.#pollMs = options.pollMs ?? 1000;
    // Long enough for a whole batch to time out, twice over.
    this.#leaseMs = Math.max(60_000, 2 * Math.ceil(this.#batch / this.#perEndpoint) * this.#timeoutMs);
    if (this.#schedule.length === 0) throw new RangeError('the retry schedule needs at least one attempt');
    this.#addressPolicy = options.addressPolicy ?? 'public-and-loopback';
    const lookup = this.#addressPolicy === 'any' ? undefined : guardedLookup(this.#addressPolicy, options.resolve);
    this.#agent = new Agent({ connections: this.#perEndpoint, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs, connect: { timeout: this.#timeoutMs, ...(lookup && { lookup }) } });
  }

  start(): void {
    this.#timer = setInterval(() => void this.#scheduledTick(), this.#pollMs);
    this.#timer.unref();
    void this.#scheduledTick();
  }

  async #scheduledTick(): Promise<void> {
    try {
      await this.tick();
      if (this.#failing) this.#logger?.info('webhook deliveries are being sent again');
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) this.#logger?.warn({ err }, 'could not look for webhook deliveries; trying again at every tick');
      this.#failing = true;
    }
  }

  /** Starts a lane for each endpoint with due deliveries that has none running; resolves once they are started. */
  async tick(): Promise<void> {
    if (this.#stopping) return;
    for (const endpoint of await this.#repos.webhooks.endpointsWithDueWork(this.#now())) {
      if (this.#lanes.has(endpoint.id)) continue;
      const lane = this.#lane(endpoint.id)
        .catch((err: unknown) => this.#logger?.warn({ err, endpoint: endpoint.id }, 'webhook sender stopped; the next tick resumes it'))
        .finally(() => this.#lanes.delete(endpoint.id));
      this.#lanes.set(endpoint.id, lane);
    }
  }

  /** Sends everything due now, endpoint lanes in parallel, and returns when none is left (for tests and one-off runs). */
  async drain(): Promise<void> {
    for (;;) {
      await this.tick();
      if (this.#lanes.size === 0) return;
      await Promise.all(this.#lanes.values());
    }
  }

  /** Takes no new work, waits for the attempts in hand to be recorded, and closes the connections. */
  stop(): Promise<void> {
    return (this.#stopped ??= (async () => {
      this.#stopping = true;
      clearInterval(this.#timer);
      await Promise.allSettled(this.#lanes.values());
      await this.#agent.close();
    })());
  }

  /** The endpoint as it is now, and up to a batch of its due deliveries leased to this sender. */
  async #claim(endpointId: string): Promise<{ endpoint: WebhookEndpointRow; claimed: ClaimedDelivery[] } | null> {
    const endpoint = await this.#repos.webhooks.getEndpoint(endpointId);
    if (!endpoint || endpoint.enabled !== 1) return null;
    const now = this.#now();
    const claimed = await this.#repos.webhooks.claimDue(endpointId, { owner: this.#owner, now, until: now + this.#leaseMs, limit: this.#batch });
    return claimed.length > 0 ? { endpoint, claimed } : null;
  }

  /**
   * Sends an endpoint's due deliveries a batch at a time. The next batch is
   * leased, and the last one recorded, while this one is being sent, so the
   * connections do not sit idle through the database's round trips.
   */
  async #lane(endpointId: string): Promise<void> {
    const limit = pLimit(this.#perEndpoint);
    let recording: Promise<void> = Promise.resolve();
    let next = this.#claim(endpointId);
    try {
      for (;;) {
        const current = await next;
        next = Promise.resolve(null);
        if (!current) return;
        if (this.#stopping) {
          await this.#release(current.claimed);
          return;
        }
        const { endpoint, claimed } = current;
        next = this.#claim(endpointId);
        // Awaited below; a failure meanwhile is not an unhandled rejection.
        next.catch(() => undefined);
        // Checked again at send time: an endpoint stored before a rule tightened is not sent to either (rule 33).
        let url: URL | Error;
        try {
          url = checkWebhookUrl(endpoint.url, this.#addressPolicy);
        } catch (err) {
          url = err as Error;
        }
        // After a 410 the endpoint is disabled: what is not sent yet waits, untouched, until someone enables it again.
        let gone = false;
        const results = await Promise.all(
          claimed.map((item) =>
            limit(async () => {
              if (gone || this.#stopping) return null;
              const result = await this.#attempt(endpoint, url, item);
              if (result.disableReason) gone = true;
              return result;
            }),
          ),
        );
        await recording;
        recording = this.#record(claimed, results);
        recording.catch(() => undefined);
        if (gone) return;
      }
    } finally {
      // However the lane ends, what was sent is recorded, and a batch leased ahead goes back at once.
      const ahead = await next.catch(() => null);
      if (ahead) await this.#release(ahead.claimed);
      await recording;
    }
  }

  async #record(claimed: readonly ClaimedDelivery[], results: readonly (AttemptResult | null)[]): Promise<void> {
    await this.#repos.webhooks.recordAttempts(results.filter((result) => result !== null), this.#now());
    await this.#release(claimed.filter((_, i) => results[i] === null));
  }

  async #release(claimed: readonly ClaimedDelivery[]): Promise<void> {
    await this.#repos.webhooks.releaseLeases(claimed.map((item) => item.delivery.id), this.#owner);
  }

  #key(secret: string): KeyObject {
    let key = this.#keys.get(secret);
    if (!key) {
      key = signingKey(secret);
      this.#keys.set(secret, key);
    }
    return key;
  }

  async #attempt(endpoint: WebhookEndpointRow, checkedUrl: URL | Error, { delivery, event }: ClaimedDelivery): Promise<AttemptResult> {
    const body = envelopeBody(event);
    const seconds = Math.floor(Date.now() / 1000);
    const signature = signingSecrets(endpoint, this.#now())
      .map((secret) => sign(this.#key(secret), event.id, seconds, body))
      .join(' ');
    const attemptedAt = this.#now();
    const started = performance.now();
    let statusCode: number | null = null;
    let error: string | null = null;
    let excerpt: string | null = null;
    let retryAfterMs: number | null = null;
    try {
      if (checkedUrl instanceof Error) throw checkedUrl;
      // undici's request never follows redirects: a 3xx is an answer like any other non-2xx (rule 33).
      const response = await request(checkedUrl, {
        method: 'POST',
        dispatcher: this.#agent,
        signal: AbortSignal.timeout(this.#timeoutMs),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Roster-Webhooks/1',
          'webhook-id': event.id,
          'webhook-timestamp': String(seconds),
          'webhook-signature': signature,
        },
        body,
      });
      statusCode = response.statusCode;
      excerpt = await readCapped(response.body, RESPONSE_READ_CAP);
      if (statusCode === 429 || statusCode === 503) retryAfterMs = parseRetryAfter(response.headers['retry-after'], Date.now());
    } catch (err) {
      error = describeSendError(err, this.#timeoutMs);
    }
    const latencyMs = performance.now() - started;
    const base = { deliveryId: delivery.id, endpointId: endpoint.id, owner: this.#owner, attemptedAt, statusCode, latencyMs, error, excerpt };
    if (statusCode !== null && statusCode >= 200 && statusCode < 300) return { ...base, status: 'succeeded', scheduleStep: delivery.schedule_step, nextAttemptAt: null, disableReason: null };
    if (statusCode === 410) return { ...base, status: 'failed', scheduleStep: delivery.schedule_step, nextAttemptAt: null, disableReason: 'the endpoint answered 410 Gone' };
    const step = delivery.schedule_step + 1;
    if (step >= this.#schedule.length) return { ...base, status: 'failed', scheduleStep: step, nextAttemptAt: null, disableReason: null };
    const waitMs = Math.max(this.#schedule[step]!, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
    return { ...base, status: 'pending', scheduleStep: step, nextAttemptAt: this.#now() + waitMs, disableReason: null };
  }
}

/** The HMAC key of a `whsec_<base64>` secret, as Standard Webhooks reads it; made once, since a key given as bytes is made into one on every use. */
export function signingKey(secret: string): KeyObject {
  return createSecretKey(Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64'));
}

/**
 * Standard Webhooks' `v1` signature of one message, made with Node's own
 * HMAC-SHA256: the same bytes as the `standardwebhooks` package's `sign`,
 * whose hash in plain JavaScript cost more per delivery than recording it.
 */
export function sign(key: KeyObject, id: string, seconds: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${seconds}.${body}`).digest('base64')}`;
}

/** Reads at most `cap` bytes of a body as text; the rest is left unread and the stream closed. */
async function readCapped(body: AsyncIterable<Buffer> & { destroy(): void }, cap: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= cap) break;
  }
  body.destroy();
  if (size === 0) return null;
  return Buffer.concat(chunks).subarray(0, cap).toString('utf8').slice(0, EXCERPT_CHARS);
}

/** `Retry-After` in seconds or as an HTTP date, in milliseconds from `now`; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return null;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

function describeSendError(err: unknown, timeoutMs: number): string {
  const e = err as Error & { code?: string; name?: string };
  if (e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') return `no answer within ${timeoutMs / 1000} s`;
  if (e.name === 'WebhookInputError') return e.message;
  // undici wraps nothing here: the lookup's refusal arrives as itself.
  if (e instanceof RefusedAddressError) return e.message;
  return `${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`.slice(0, 300);
}
