import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A local webhook receiver that answers every delivery the same way; `close()` ends its connections too. */
export async function startAnsweringReceiver(status: number, body: string, headers: Record<string, string> = {}): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((_req, res) => void res.writeHead(status, headers).end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
