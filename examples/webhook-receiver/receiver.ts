// A receiver for Roster's webhooks to copy into your product. Run it with
//   WEBHOOK_SECRET=whsec_... PORT=4000 node examples/webhook-receiver/receiver.ts
// and give Roster the endpoint http://127.0.0.1:4000/webhooks/roster (https anywhere else).
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

export interface RosterEvent {
  id: string;
  type: string;
  created_at: string;
  tenant_id: string | null;
  data: Record<string, unknown>;
  previous_attributes?: Record<string, unknown>;
}

const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Verifies each delivery's signature (any of the signatures during a secret rotation),
 * answers 204 at once, then hands each event to `onEvent` once: Roster delivers at
 * least once, so a repeated `webhook-id` is acknowledged and skipped. Keep `seen` in
 * your database (a unique key on the id) so it survives restarts.
 */
export function webhookHandler(options: { secret: string; onEvent: (event: RosterEvent) => void | Promise<void>; seen?: Set<string> }): RequestListener {
  const webhook = new Webhook(options.secret);
  const seen = options.seen ?? new Set<string>();
  return (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST') return void res.writeHead(405).end();
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) req.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let event: RosterEvent;
      try {
        // Checks the signature and that the timestamp is within five minutes (replays of old deliveries fail).
        event = webhook.verify(body, req.headers as Record<string, string>) as RosterEvent;
      } catch (err) {
        return void res.writeHead(err instanceof WebhookVerificationError ? 400 : 500).end();
      }
      const id = String(req.headers['webhook-id']);
      res.writeHead(204).end();
      if (seen.has(id)) return;
      seen.add(id);
      // After the answer: slow work here never makes Roster time out and send again.
      setImmediate(() => void Promise.resolve(options.onEvent(event)).catch((err: unknown) => console.error('handling webhook', id, 'failed:', err)));
    });
  };
}

if (import.meta.main) {
  const secret = process.env.WEBHOOK_SECRET;
  if (!secret) throw new Error('set WEBHOOK_SECRET to the endpoint secret Roster showed when the endpoint was created');
  const port = Number(process.env.PORT ?? 4000);
  createServer(webhookHandler({ secret, onEvent: (event) => console.log(event.type, event.tenant_id, JSON.stringify(event.data)) })).listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}/webhooks/roster`));
}
