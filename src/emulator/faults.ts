import { randomUUID } from 'node:crypto';
import { seededRandom } from './random.ts';

/** Which part of the emulator a fault applies to; `notification` is the delivery of change notifications (delay or drop only). */
export type FaultTarget = 'graph' | 'token' | 'notification' | 'any';

export type FaultKind = 'throttle' | 'unavailable' | 'delay' | 'drop';

export interface FaultSpec {
  target: FaultTarget;
  kind: FaultKind;
  /** Only requests for this tenant (GUID); all tenants when absent. */
  tenant?: string;
  /** `Retry-After` header value for `throttle`/`unavailable`: seconds (may be fractional) or an HTTP date. */
  retryAfter?: string;
  /** For `delay`: how long to hold the request before serving it. */
  delayMs?: number;
  /** Affect this share of matching requests (0..1)... */
  share?: number;
  /** ...or exactly the next N matching requests. */
  count?: number;
}

export interface Fault extends FaultSpec {
  id: string;
  /** Requests this fault has hit so far. */
  hits: number;
}

export class FaultInjector {
  #faults: Fault[] = [];
  #random: () => number;

  constructor(seed = 1) {
    this.#random = seededRandom(seed);
  }

  add(spec: FaultSpec): Fault {
    const fault: Fault = { ...spec, id: randomUUID(), hits: 0 };
    this.#faults.push(fault);
    return fault;
  }

  remove(id: string): boolean {
    const before = this.#faults.length;
    this.#faults = this.#faults.filter((f) => f.id !== id);
    return this.#faults.length < before;
  }

  clear(): void {
    this.#faults = [];
  }

  list(): Fault[] {
    return this.#faults.map((f) => ({ ...f }));
  }

  /** The fault to apply to this request, if any; counts it as a hit. */
  pick(target: Exclude<FaultTarget, 'any'>, tenant: string | undefined): Fault | undefined {
    for (const fault of this.#faults) {
      if (fault.target !== 'any' && fault.target !== target) continue;
      // `any` means the requests the emulator serves; deliveries it makes are only hit when named.
      if (fault.target === 'any' && target === 'notification') continue;
      if (fault.tenant && fault.tenant !== tenant) continue;
      if (fault.count !== undefined) {
        if (fault.hits >= fault.count) continue;
      } else if (fault.share !== undefined && this.#random() >= fault.share) {
        continue;
      }
      fault.hits += 1;
      return fault;
    }
    return undefined;
  }
}

export interface RequestLogEntry {
  /** Wall-clock time the request arrived (ms since epoch; not the emulator clock). */
  atMs: number;
  method: string;
  /** The route pattern, e.g. `GET /v1.0/users`. */
  route: string;
  /** Tenant GUID the request was for, when known. */
  tenant?: string;
  status?: number;
  /** Kind of the fault injected into this request, if any. */
  fault?: FaultKind;
}

/** Every request the emulator served, bounded so a long demo cannot grow without limit. */
export class RequestLog {
  readonly capacity: number;
  #entries: RequestLogEntry[] = [];
  #countsByRoute = new Map<string, number>();

  constructor(capacity = 200_000) {
    this.capacity = capacity;
  }

  record(entry: RequestLogEntry): RequestLogEntry {
    this.#entries.push(entry);
    if (this.#entries.length > this.capacity) this.#entries.splice(0, this.#entries.length - this.capacity);
    this.#countsByRoute.set(entry.route, (this.#countsByRoute.get(entry.route) ?? 0) + 1);
    return entry;
  }

  entries(filter: { tenant?: string; route?: string; sinceMs?: number } = {}): RequestLogEntry[] {
    return this.#entries.filter(
      (e) =>
        (filter.tenant === undefined || e.tenant === filter.tenant) &&
        (filter.route === undefined || e.route === filter.route) &&
        (filter.sinceMs === undefined || e.atMs >= filter.sinceMs),
    );
  }

  countsByRoute(): Record<string, number> {
    return Object.fromEntries([...this.#countsByRoute].sort(([a], [b]) => a.localeCompare(b)));
  }

  reset(): void {
    this.#entries = [];
    this.#countsByRoute.clear();
  }
}
