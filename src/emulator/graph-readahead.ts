import type { Tenant } from './model.ts';

/** A page body and the `$skiptoken` of the page after it. */
export interface PreparedPage {
  body: string | Buffer;
  next: string | undefined;
}

interface Prepared extends PreparedPage {
  tenant: Tenant;
  /** The tenant's change sequence when the page was built: any change since makes it stale. */
  seq: number;
  atMs: number;
}

/**
 * Read-ahead for `/users` paging: right after answering a page, the next one
 * (named by the `$skiptoken` just issued) is built while the client is busy
 * parsing, so the next request of a sync is answered without serialising on
 * its critical path. Bodies are kept as UTF-8 buffers, bounded in number and
 * age, and dropped as soon as the tenant changes.
 */
export class PageReadAhead {
  readonly #pages = new Map<string, Prepared>();
  /** Who waits for a scheduled page to be built (see `whenPrepared`). */
  readonly #waiters = new Map<string, Array<(prepared: boolean) => void>>();
  readonly #capacity: number;
  readonly #maxAgeMs: number;

  constructor(capacity = 8, maxAgeMs = 60_000) {
    this.#capacity = capacity;
    this.#maxAgeMs = maxAgeMs;
  }

  /** Takes the prepared page for this token, if it is still exactly what would be built now. */
  take(token: string, tenant: Tenant): PreparedPage | undefined {
    const page = this.#pages.get(token);
    if (!page) return undefined;
    this.#pages.delete(token);
    if (page.tenant !== tenant || page.seq !== tenant.seq || Date.now() - page.atMs > this.#maxAgeMs) return undefined;
    return page;
  }

  /** Builds the page for `token` soon, off the current request's path. */
  schedule(token: string, tenant: Tenant, build: () => PreparedPage): void {
    if (this.#pages.has(token)) return;
    setImmediate(() => {
      if (!this.#pages.has(token)) this.#prepare(token, tenant, build);
      this.#settle(token, this.#pages.has(token));
    });
  }

  /** Resolves once a scheduled page has been built (true) or could not be (false): the event to wait for instead of a pause. */
  whenPrepared(token: string): Promise<boolean> {
    if (this.#pages.has(token)) return Promise.resolve(true);
    return new Promise((resolve) => this.#waiters.set(token, [...(this.#waiters.get(token) ?? []), resolve]));
  }

  #prepare(token: string, tenant: Tenant, build: () => PreparedPage): void {
    const seq = tenant.seq;
    let page: PreparedPage;
    try {
      page = build();
    } catch {
      return; // the request itself will build (and report) it
    }
    if (this.#pages.size >= this.#capacity) this.#pages.delete(this.#pages.keys().next().value!);
    this.#pages.set(token, { body: Buffer.from(page.body), next: page.next, tenant, seq, atMs: Date.now() });
  }

  #settle(token: string, prepared: boolean): void {
    for (const resolve of this.#waiters.get(token) ?? []) resolve(prepared);
    this.#waiters.delete(token);
  }
}
