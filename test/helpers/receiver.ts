import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface Received {
  path: string;
  body: { value: Record<string, unknown>[] };
}

/**
 * A subscriber's endpoint on 127.0.0.1: answers Graph's validation handshake
 * (unless told otherwise) and records every notification it accepts.
 */
export interface Receiver {
  url: string;
  received: Received[];
  /** Notification items received so far (all batches). */
  items(): Record<string, unknown>[];
  /** How the next requests are answered: status code and a delay before answering. */
  behaviour: { validation: 'echo' | 'wrong' | 'html' | 'silent'; status: number; delayMs: number };
  waitFor(predicate: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const behaviour: Receiver['behaviour'] = { validation: 'echo', status: 202, delayMs: 0 };
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://localhost');
      const token = url.searchParams.get('validationToken');
      if (token !== null) {
        if (behaviour.validation === 'silent') return;
        if (behaviour.validation === 'html') return void response.writeHead(200, { 'content-type': 'text/html' }).end(token);
        return void response.writeHead(200, { 'content-type': 'text/plain' }).end(behaviour.validation === 'wrong' ? 'not the token' : token);
      }
      const answer = () => {
        if (behaviour.status >= 200 && behaviour.status < 300) received.push({ path: url.pathname, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['body'] });
        if (!response.destroyed) response.writeHead(behaviour.status).end();
      };
      if (behaviour.delayMs > 0) setTimeout(answer, behaviour.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://localhost:${port}`,
    received,
    behaviour,
    items: () => received.flatMap((r) => r.body.value),
    async waitFor(predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error('timed out waiting for notifications');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
