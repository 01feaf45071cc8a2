import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * A TCP proxy on 127.0.0.1 that stands between Roster and PostgreSQL and
 * misbehaves on demand, as a failover, a server restart or a network blip would.
 */
export interface FaultProxy {
  /** `host:port` to put in a connection string instead of the real server's. */
  readonly address: { host: string; port: number };
  /** The target URL with its host and port replaced by the proxy's. */
  url(targetUrl: string): string;
  /** Destroys every open connection; with `refuseMs`, also refuses new ones for that long. */
  cut(options?: { refuseMs?: number }): void;
  /** New connections are closed at once until `accept()`. */
  refuse(): void;
  accept(): void;
  /** Holds every byte in both directions until `resume()`. */
  pause(): void;
  resume(): void;
  /** Delays every chunk by `ms` in both directions (0 removes the delay). */
  slow(ms: number): void;
  /** Bytes the proxy holds (paused or delayed) on open connections. */
  readonly held: number;
  /** Connections open now. */
  readonly open: number;
  /** Connections accepted since the start (refused ones not counted). */
  readonly accepted: number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
  gates: Gate[];
}

/** Passes chunks through, held while paused and each delayed by the current latency, in order. */
class Gate extends Transform {
  #paused = false;
  #queue: { chunk: Buffer; callback: TransformCallback }[] = [];
  #latency: () => number;
  /** Bytes received and not yet passed on. */
  held = 0;

  constructor(latency: () => number, paused: boolean) {
    super();
    this.#latency = latency;
    this.#paused = paused;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#queue.push({ chunk, callback });
    this.held += chunk.length;
    if (this.#queue.length === 1) this.#drain();
  }

  hold(): void {
    this.#paused = true;
  }

  release(): void {
    this.#paused = false;
    this.#drain();
  }

  #drain(): void {
    if (this.#paused || this.destroyed) return;
    const head = this.#queue[0];
    if (!head) return;
    const pass = () => {
      if (this.#paused || this.destroyed) return;
      this.#queue.shift();
      this.held -= head.chunk.length;
      this.push(head.chunk);
      head.callback();
      this.#drain();
    };
    const ms = this.#latency();
    if (ms > 0) setTimeout(pass, ms);
    else pass();
  }
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const pairs = new Set<Pair>();
  let refusing = false;
  let refuseTimer: NodeJS.Timeout | undefined;
  let paused = false;
  let latencyMs = 0;
  let accepted = 0;
  const latency = () => latencyMs;

  const server: Server = createServer((client) => {
    client.on('error', () => {});
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    accepted++;
    const upstream = createConnection(target);
    const gates = [new Gate(latency, paused), new Gate(latency, paused)];
    const pair: Pair = { client, server: upstream, gates };
    pairs.add(pair);
    const end = () => {
      if (!pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
      for (const gate of gates) gate.destroy();
    };
    for (const socket of [client, upstream, ...gates]) {
      socket.on('error', end);
      socket.on('close', end);
    }
    client.pipe(gates[0]!).pipe(upstream);
    upstream.pipe(gates[1]!).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const bound = server.address();
  if (!bound || typeof bound !== 'object') throw new Error('the fault proxy has no address');
  const address = { host: '127.0.0.1', port: bound.port };

  const destroyAll = () => {
    for (const pair of [...pairs]) {
      pairs.delete(pair);
      // A reset, not a polite FIN: what a peer sees when the server or the network goes away.
      pair.client.resetAndDestroy();
      pair.server.resetAndDestroy();
      for (const gate of pair.gates) gate.destroy();
    }
  };

  return {
    address,
    url(targetUrl) {
      const url = new URL(targetUrl);
      url.hostname = address.host;
      url.port = String(address.port);
      return url.toString();
    },
    cut(options = {}) {
      if (options.refuseMs !== undefined) {
        if (!Number.isFinite(options.refuseMs) || options.refuseMs < 0) throw new RangeError(`refuseMs must be a non-negative number of milliseconds, got ${options.refuseMs}`);
        refusing = true;
        clearTimeout(refuseTimer);
        refuseTimer = setTimeout(() => (refusing = false), options.refuseMs);
        refuseTimer.unref();
      }
      destroyAll();
    },
    refuse() {
      clearTimeout(refuseTimer);
      refusing = true;
    },
    accept() {
      clearTimeout(refuseTimer);
      refusing = false;
    },
    pause() {
      paused = true;
      for (const pair of pairs) for (const gate of pair.gates) gate.hold();
    },
    resume() {
      paused = false;
      for (const pair of pairs) for (const gate of pair.gates) gate.release();
    },
    slow(ms) {
      if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency must be a non-negative number of milliseconds, got ${ms}`);
      latencyMs = ms;
    },
    get held() {
      let bytes = 0;
      for (const pair of pairs) for (const gate of pair.gates) bytes += gate.held;
      return bytes;
    },
    get open() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    close: async () => {
      clearTimeout(refuseTimer);
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
