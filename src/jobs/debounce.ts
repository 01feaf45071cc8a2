/**
 * Coalesces wishes to sync one tenant into delta rounds (change notifications,
 * rule 3): the first wish waits `delayMs` for the rest of its burst; a wish
 * made while a round runs asks for exactly one more round after it, however
 * many arrive meanwhile.
 */
export class SyncDebouncer {
  readonly #delayMs: number;
  readonly #run: (tenantId: string) => Promise<unknown>;
  readonly #isRunning: (tenantId: string) => boolean;
  readonly #waiting = new Map<string, NodeJS.Timeout>();
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  #stopped = false;

  /**
   * `run` starts a round of the tenant, or returns the one under way;
   * `isRunning` says whether one runs now (started by anyone in this process).
   */
  constructor(options: { delayMs: number; run: (tenantId: string) => Promise<unknown>; isRunning: (tenantId: string) => boolean }) {
    this.#delayMs = options.delayMs;
    this.#run = options.run;
    this.#isRunning = options.isRunning;
  }

  request(tenantId: string): void {
    if (this.#stopped || this.#waiting.has(tenantId)) return;
    if (this.#inFlight.has(tenantId)) {
      this.#again.add(tenantId);
      return;
    }
    const timer = setTimeout(() => this.#fire(tenantId), this.#delayMs);
    timer.unref();
    this.#waiting.set(tenantId, timer);
  }

  /** Whether a round of the tenant is waiting or running because of a wish. */
  pending(tenantId: string): boolean {
    return this.#waiting.has(tenantId) || this.#inFlight.has(tenantId);
  }

  /** Resolves once no wish is waiting or running (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.#waiting.size > 0 || this.#inFlight.size > 0) {
      await Promise.allSettled([...this.#inFlight.values()]);
      if (this.#inFlight.size === 0 && this.#waiting.size > 0) await new Promise((resolve) => setTimeout(resolve, this.#delayMs));
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#waiting.values()) clearTimeout(timer);
    this.#waiting.clear();
    this.#again.clear();
  }

  #fire(tenantId: string): void {
    this.#waiting.delete(tenantId);
    const round = (async () => {
      // A round that started before the wish may have read past the change already: let it end, then run one that starts after.
      if (this.#isRunning(tenantId)) await this.#run(tenantId).catch(() => {});
      if (!this.#stopped) await this.#run(tenantId).catch(() => {});
    })().finally(() => {
      this.#inFlight.delete(tenantId);
      if (this.#again.delete(tenantId)) this.request(tenantId);
    });
    this.#inFlight.set(tenantId, round);
  }
}
