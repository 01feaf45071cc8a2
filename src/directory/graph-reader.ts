import { RosterError } from '../errors.ts';
import { GraphError, graphErrorBody } from '../identity/graph-errors.ts';
import type { OutboundHttp } from '../identity/http.ts';
import { backoffMs, retryAfterMs } from './retry.ts';

/** A Graph answer Roster could not use, after retries. */
export class GraphRequestError extends GraphError {}

/** Graph could not be reached at all (connection refused, dropped or timed out), after retries. */
export class GraphUnreachableError extends RosterError {
  constructor(cause: Error) {
    const detail = cause.cause instanceof Error ? `${cause.message}: ${cause.cause.message}` : cause.message;
    super(`Microsoft Graph could not be reached (${detail})`, { status: 502, code: 'graph_unreachable', cause });
  }
}

export interface GraphPage<T> {
  value: T[];
  '@odata.nextLink'?: string;
  '@odata.deltaLink'?: string;
}

const RETRIED_STATUSES = new Set([429, 500, 502, 503, 504]);

/** Runs a request within the app's global concurrency budget (shared by every tenant). */
export type RequestBudget = <T>(request: () => Promise<T>) => Promise<T>;

export interface GraphReaderOptions {
  http: OutboundHttp;
  /**
   * Graph throttles per app across all tenants: every request of every tenant
   * takes a slot of one shared budget, and waits for `Retry-After` outside it,
   * so a throttled tenant never holds up the others.
   */
  budget?: RequestBudget;
  /** Attempts per request before giving up (the run then fails and is retried later). */
  maxAttempts?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** Called before each wait, so progress can show "throttled for N s". */
  onWait?: (ms: number, reason: string) => void;
}

/**
 * Reads Graph pages with the retry rules of directory sync: 429 and 5xx wait
 * at least `Retry-After` (seconds, fractions or an HTTP date), otherwise
 * exponential backoff with jitter; network errors and timeouts back off too.
 * Written here rather than taken from the Graph client library because its
 * RetryHandler rounds an HTTP-date `Retry-After` down and caps every wait at
 * its maximum delay, so it can retry sooner than Graph asked.
 */
export class GraphReader {
  readonly #http: OutboundHttp;
  readonly #maxAttempts: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #now: () => number;
  readonly #onWait: ((ms: number, reason: string) => void) | undefined;
  readonly #budget: RequestBudget;

  constructor(options: GraphReaderOptions) {
    this.#http = options.http;
    this.#budget = options.budget ?? ((request) => request());
    this.#maxAttempts = options.maxAttempts ?? 6;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#now = options.now ?? Date.now;
    this.#onWait = options.onWait;
  }

  /**
   * One page. `accessToken` is asked again with `fresh` after a 401 or a 403,
   * once: a cached token can be refused before its expiry (clock skew, revoked
   * sessions), and an app token's roles are fixed when it is issued, so after
   * an administrator consents to a new permission only a new token carries it.
   */
  async getPage<T>(url: string, accessToken: AccessTokenSource, headers: Record<string, string> = {}): Promise<GraphPage<T>> {
    let fresh = false;
    for (let attempt = 0; ; attempt++) {
      const authorization = `Bearer ${await accessToken({ fresh })}`;
      let answer: { status: number; ok: boolean; retryAfter: string | null; text: string };
      try {
        answer = await this.#budget(async () => {
          const response = await this.#http.fetch(url, {
            headers: { authorization, accept: 'application/json', ...headers },
            signal: AbortSignal.timeout(60_000),
          });
          return { status: response.status, ok: response.ok, retryAfter: response.headers.get('retry-after'), text: await response.text() };
        });
      } catch (err) {
        if (!isNetworkError(err)) throw err;
        if (attempt + 1 >= this.#maxAttempts) throw new GraphUnreachableError(err as Error);
        await this.#wait(backoffMs(attempt), `network error: ${(err as Error).message}`);
        continue;
      }
      if (answer.ok) return JSON.parse(answer.text) as GraphPage<T>;
      const response = answer;
      const text = answer.text;
      // Not Graph's JSON envelope (a proxy's page): keep the status and the start of the text.
      const body = graphErrorBody(text);
      const code = body.code ?? `HTTP${response.status}`;
      const message = body.message ?? text.slice(0, 300);
      if ((response.status === 401 || response.status === 403) && !fresh) {
        fresh = true;
        attempt -= 1; // asking again with a new token is not a retry of a failure
        continue;
      }
      if (!RETRIED_STATUSES.has(response.status) || attempt + 1 >= this.#maxAttempts) {
        throw new GraphRequestError(response.status, code, `Graph answered ${response.status} ${code}: ${message}`);
      }
      const asked = retryAfterMs(response.retryAfter, this.#now());
      await this.#wait(asked ?? backoffMs(attempt), `${response.status} ${code}`);
    }
  }

  async #wait(ms: number, reason: string): Promise<void> {
    this.#onWait?.(ms, reason);
    await this.#sleep(ms);
  }
}

export type AccessTokenSource = (options: { fresh: boolean }) => Promise<string>;

function isNetworkError(err: unknown): boolean {
  const e = err as { name?: string; cause?: { code?: string } };
  return e.name === 'TimeoutError' || e.name === 'AbortError' || (e.name === 'TypeError' && e.cause !== undefined);
}
