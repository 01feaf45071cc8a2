import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Webhook } from 'standardwebhooks';
import { webhookHandler, type RosterEvent } from '../../examples/webhook-receiver/receiver.ts';
import { DeliveryWorker, RETRY_SCHEDULE_MS, type DeliveryWorkerOptions } from '../../src/events/delivery.ts';
import { WebhookEndpoints } from '../../src/events/endpoints.ts';
import { WebhookInputError } from '../../src/events/errors.ts';
import type { AuditActor } from '../../src/store/audit.ts';
import { repositoriesOf } from '../../src/store/repositories.ts';

const OPS: AuditActor = { kind: 'cli', id: 'cli', name: 'test', source: 'cli' };
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A local receiver whose behaviour the test swaps; it counts requests and keeps their headers. */
async function startReceiver(port = 0): Promise<{ server: Server; url: string; port: number; requests: { headers: IncomingMessage['headers']; body: string }[]; handle: { current: Handler }; close(): Promise<void> }> {
  const requests: { headers: IncomingMessage['headers']; body: string }[] = [];
  const handle = { current: ((_req, res) => void res.writeHead(204).end()) as Handler };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }));
    handle.current(req, res);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    server,
    url: `http://127.0.0.1:${bound}/hooks`,
    port: bound,
    requests,
    handle,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function unusedPort(): Promise<number> {
  const probe = await startReceiver();
  await probe.close();
  return probe.port;
}

for (const engine of ENGINES) {
  describe(`webhook delivery (${engine})`, () => {
    let db: TestStore;
    let clock = Date.now();
    const now = () => clock;
    let endpoints: WebhookEndpoints;
    const tenantId = '11111111-2222-3333-4444-555555555555';
    const workers: DeliveryWorker[] = [];

    function worker(options: { timeoutMs?: number; perEndpoint?: number; resolve?: DeliveryWorkerOptions['resolve'] } = {}): DeliveryWorker {
      const w = new DeliveryWorker({ store: db.store, now, timeoutMs: options.timeoutMs ?? 400, perEndpoint: options.perEndpoint ?? 4, resolve: options.resolve });
      workers.push(w);
      return w;
    }

    async function emit(count: number, type = 'user.created', tenant: string | null = tenantId): Promise<void> {
      await repositoriesOf(db.store).events.append(Array.from({ length: count }, (_, i) => ({ type, tenantId: tenant, data: { id: `user-${i}`, display_name: `<b>User ${i}</b>` } })), clock);
    }

    async function deliveriesOf(endpointId: string) {
      return db.store.db.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', endpointId).orderBy('event_sequence').execute();
    }

    before(async () => {
      db = await openTestStore(engine);
      await repositoriesOf(db.store).tenants.activate({ id: tenantId, displayName: 'Hooked', domains: ['hooked.com'], signedUpByOid: null, signupContext: null }, clock);
      endpoints = new WebhookEndpoints({ store: db.store, now, rotationWindowMs: 3_600_000 });
    });
    after(async () => {
      for (const w of workers) await w.stop();
      await db.drop();
    });
    beforeEach(async () => {
      // Each test's endpoints see only its own events.
      for (const endpoint of await endpoints.list()) await endpoints.setEnabled(endpoint.id, false, OPS);
    });

    it('at least once: a receiver that is down, then slow, then answers 500 twice, then 200 gets every event; a restart between attempts loses none; its dedup by webhook-id sees each once', async () => {
      const port = await unusedPort();
      const { endpoint, secret } = await endpoints.create({ url: `http://127.0.0.1:${port}/hooks` }, OPS);
      await emit(3);
      const received: RosterEvent[] = [];
      const seen = new Set<string>();
      const example = webhookHandler({ secret, seen, onEvent: (event) => void received.push(event) });

      let sender = worker();
      await sender.drain(); // down: connection refused
      let rows = await deliveriesOf(endpoint.id);
      assert.deepEqual(rows.map((r) => [r.status, r.schedule_step, r.next_attempt_at! - clock]), Array(3).fill(['pending', 1, RETRY_SCHEDULE_MS[1]]));

      const receiver = await startReceiver(port);
      try {
        await sender.drain();
        assert.equal(receiver.requests.length, 0, 'nothing is sent before its time');

        // Slow: the example handles each delivery, but answers after Roster stopped waiting; Roster sends again later.
        clock += RETRY_SCHEDULE_MS[1]!;
        receiver.handle.current = (req, res) => {
          const writeHead = res.writeHead.bind(res) as (status: number) => ServerResponse;
          res.writeHead = ((status: number) => {
            setTimeout(() => writeHead(status).end(), 700);
            return { end: () => res };
          }) as never;
          example(req, res);
        };
        await sender.drain();
        rows = await deliveriesOf(endpoint.id);
        assert.ok(rows.every((r) => r.status === 'pending' && r.schedule_step === 2 && /no answer within 0.4 s/.test(r.last_error ?? '')), JSON.stringify(rows));
        for (const deadline = Date.now() + 10_000; received.length < 3 && Date.now() < deadline; ) await delay(20);
        assert.equal(received.length, 3, 'the late answers were still handled by the receiver');

        // Roster restarts between attempts: a new sender finds the rows.
        await sender.stop();
        sender = worker();
        clock += RETRY_SCHEDULE_MS[2]!;
        receiver.handle.current = (_req, res) => void res.writeHead(500).end('try later');
        await sender.drain();
        clock += RETRY_SCHEDULE_MS[3]!;
        await sender.drain();
        rows = await deliveriesOf(endpoint.id);
        assert.ok(rows.every((r) => r.status === 'pending' && r.schedule_step === 4 && r.last_status_code === 500));

        clock += RETRY_SCHEDULE_MS[4]!;
        receiver.handle.current = example;
        await sender.drain();
        rows = await deliveriesOf(endpoint.id);
        assert.ok(rows.every((r) => r.status === 'succeeded' && r.attempts === 5 && r.last_status_code === 204), JSON.stringify(rows));
        await delay(50);
        assert.equal(received.length, 3, 'each event handled once, though delivered twice');
        assert.equal(seen.size, 3);
        const feed = await repositoriesOf(db.store).events.list({ after: 0, tenantId, limit: 1000 });
        assert.deepEqual(new Set(received.map((e) => e.id)), new Set(feed.slice(-3).map((e) => e.id)));
        const attempts = await repositoriesOf(db.store).webhooks.attemptsOf([rows[0]!.id]);
        assert.deepEqual(attempts.map((a) => a.status_code), [null, null, 500, 500, 204]);
        assert.equal(attempts[2]!.response_excerpt, 'try later');
        assert.ok(attempts.every((a) => a.latency_ms >= 0));
      } finally {
        await receiver.close();
      }
    });

    it('after the last attempt a delivery has failed; a replay by hand sends it again from the start', async () => {
      const receiver = await startReceiver();
      try {
        receiver.handle.current = (_req, res) => void res.writeHead(502).end();
        const { endpoint } = await endpoints.create({ url: receiver.url }, OPS);
        await emit(1);
        const sender = worker();
        for (const wait of RETRY_SCHEDULE_MS) {
          clock += wait;
          await sender.drain();
        }
        clock += 100 * 3_600_000;
        await sender.drain();
        const [failed] = await deliveriesOf(endpoint.id);
        assert.equal(failed!.status, 'failed');
        assert.equal(failed!.attempts, RETRY_SCHEDULE_MS.length);
        assert.equal(receiver.requests.length, RETRY_SCHEDULE_MS.length);
        receiver.handle.current = (_req, res) => void res.writeHead(200).end();
        await endpoints.replay(failed!.id, OPS, { endpointId: endpoint.id });
        await assert.rejects(endpoints.replay(failed!.id, OPS), WebhookInputError, 'a pending delivery is not replayed twice');
        await sender.drain();
        const [replayed] = await deliveriesOf(endpoint.id);
        assert.equal(replayed!.status, 'succeeded');
        assert.equal(replayed!.attempts, RETRY_SCHEDULE_MS.length + 1);
      } finally {
        await receiver.close();
      }
    });

    it('410 Gone disables the endpoint; 429 and 503 honour Retry-After', async () => {
      const receiver = await startReceiver();
      try {
        const gone = await endpoints.create({ url: receiver.url }, OPS);
        await emit(2);
        receiver.handle.current = (_req, res) => void res.writeHead(410).end();
        await worker({ perEndpoint: 1 }).drain();
        const view = await endpoints.get(gone.endpoint.id);
        assert.equal(view.enabled, false);
        assert.match(view.disabledReason!, /410/);
        const rows = await deliveriesOf(gone.endpoint.id);
        assert.equal(rows.filter((r) => r.status === 'failed').length, 1);
        assert.equal(rows.filter((r) => r.status === 'pending').length, 1, 'the rest wait for the endpoint to be enabled again');
        await endpoints.setEnabled(gone.endpoint.id, false, OPS);

        for (const status of [429, 503]) {
          const throttled = await endpoints.create({ url: receiver.url }, OPS);
          await emit(1);
          receiver.handle.current = (_req, res) => void res.writeHead(status, { 'retry-after': '3600' }).end();
          await worker().drain();
          const [row] = await deliveriesOf(throttled.endpoint.id);
          assert.equal(row!.status, 'pending');
          assert.equal(row!.next_attempt_at! - clock, 3_600_000, `${status}: the wait asked for, not the schedule's 5 s`);
          await endpoints.setEnabled(throttled.endpoint.id, false, OPS);
        }
      } finally {
        await receiver.close();
      }
    });

    it('rule 32: signatures verify with the library; the secret is shown once; during a rotation both secrets sign, then only the new one', async () => {
      const receiver = await startReceiver();
      try {
        const { endpoint, secret } = await endpoints.create({ url: receiver.url, eventTypes: ['user.created'] }, OPS);
        assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
        assert.equal(Buffer.from(secret.slice(6), 'base64').length, 32);
        for (const shown of [endpoint, await endpoints.get(endpoint.id), ...(await endpoints.list())]) assert.ok(!JSON.stringify(shown).includes(secret.slice(6)), 'never shown again');
        await emit(1);
        const sender = worker();
        await sender.drain();
        const first = receiver.requests.at(-1)!;
        const payload = new Webhook(secret).verify(first.body, first.headers as Record<string, string>) as { id: string; type: string };
        assert.equal(first.headers['webhook-id'], payload.id);
        assert.equal(payload.type, 'user.created');
        assert.match(String(first.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/);
        const forged = { ...first.headers, 'webhook-signature': new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).sign(payload.id, new Date(), first.body) } as unknown as Record<string, string>;
        assert.throws(() => new Webhook(secret).verify(first.body, forged), 'a signature made with another secret fails');
        assert.throws(() => new Webhook(secret).verify(first.body.replace('user.created', 'user.deleted'), first.headers as Record<string, string>), 'a changed body fails');

        const rotated = await endpoints.rotateSecret(endpoint.id, OPS);
        assert.notEqual(rotated.secret, secret);
        assert.ok(rotated.endpoint.previousSecretUntil! > clock);
        await emit(1);
        await sender.drain();
        const during = receiver.requests.at(-1)!;
        assert.equal(String(during.headers['webhook-signature']).split(' ').length, 2);
        for (const key of [secret, rotated.secret]) new Webhook(key).verify(during.body, during.headers as Record<string, string>);

        clock += 3_600_001;
        await emit(1);
        await sender.drain();
        const afterWindow = receiver.requests.at(-1)!;
        assert.equal(String(afterWindow.headers['webhook-signature']).split(' ').length, 1);
        new Webhook(rotated.secret).verify(afterWindow.body, afterWindow.headers as Record<string, string>);
        assert.throws(() => new Webhook(secret).verify(afterWindow.body, afterWindow.headers as Record<string, string>), 'the old secret no longer signs');
      } finally {
        await receiver.close();
      }
    });

    it('rule 33: http only to loopback; no credentials in the URL; redirects are not followed; what is read back is capped', async () => {
      for (const url of ['http://example.com/hooks', 'http://10.0.0.5/hooks', 'ftp://127.0.0.1/x', 'not a url', 'https://user:pw@example.com/hooks']) {
        await assert.rejects(endpoints.create({ url }, OPS), (err: unknown) => err instanceof WebhookInputError && err.field === 'url', url);
      }
      await assert.rejects(endpoints.create({ url: 'https://example.com/h', eventTypes: ['user.exploded'] }, OPS), (err: unknown) => err instanceof WebhookInputError && err.field === 'event_types');
      await assert.rejects(endpoints.create({ url: 'https://example.com/h', tenantId: 'nobody' }, OPS), (err: unknown) => err instanceof WebhookInputError && err.field === 'tenant_id');
      for (const url of ['https://example.com/hooks', 'http://localhost:9/x', 'http://[::1]:9/x']) await endpoints.setEnabled((await endpoints.create({ url }, OPS)).endpoint.id, false, OPS);

      const target = await startReceiver();
      const receiver = await startReceiver();
      try {
        receiver.handle.current = (_req, res) => void res.writeHead(307, { location: target.url }).end();
        const redirected = await endpoints.create({ url: receiver.url }, OPS);
        await emit(1);
        await worker().drain();
        assert.equal(target.requests.length, 0, 'the redirect was not followed');
        const [row] = await deliveriesOf(redirected.endpoint.id);
        assert.equal(row!.last_status_code, 307);
        assert.equal(row!.status, 'pending', 'a redirect is not a success');
        await endpoints.setEnabled(redirected.endpoint.id, false, OPS);

        let written = 0;
        let finished = false;
        receiver.handle.current = (_req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          const chunk = Buffer.alloc(64 * 1024, 'x');
          const pump = () => {
            while (written < 64 * 1024 * 1024) {
              written += chunk.length;
              if (!res.write(chunk)) return void res.once('drain', pump);
            }
            finished = true;
            res.end();
          };
          res.on('error', () => {});
          pump();
        };
        const big = await endpoints.create({ url: receiver.url }, OPS);
        await emit(1);
        await worker({ timeoutMs: 5000 }).drain();
        const [bigRow] = await deliveriesOf(big.endpoint.id);
        assert.equal(bigRow!.status, 'succeeded');
        const [attempt] = await repositoriesOf(db.store).webhooks.attemptsOf([bigRow!.id]);
        assert.ok(attempt!.response_excerpt!.length <= 300);
        assert.equal(finished, false, 'the 64 MB answer was not read to its end');
        await endpoints.setEnabled(big.endpoint.id, false, OPS);
      } finally {
        await receiver.close();
        await target.close();
      }
    });

    it('rule 33, addresses: private, link-local and metadata addresses are refused when saved, and a name that resolves to one at send time is not connected to', async () => {
      for (const url of ['https://169.254.169.254/latest/meta-data/', 'https://10.1.2.3/h', 'https://192.168.0.10/h', 'https://100.64.0.1/h', 'https://[fd00::1]/h', 'https://[fe80::1]/h', 'https://[::ffff:172.16.0.1]/h', 'https://0.0.0.0/h']) {
        await assert.rejects(endpoints.create({ url }, OPS), (err: unknown) => err instanceof WebhookInputError && err.field === 'url' && /refuses/.test(err.message), url);
      }
      const strict = new WebhookEndpoints({ store: db.store, now, addressPolicy: 'public' });
      for (const url of ['http://127.0.0.1:9/h', 'http://localhost:9/h', 'http://[::1]:9/h']) {
        await assert.rejects(strict.create({ url }, OPS), (err: unknown) => err instanceof WebhookInputError && /loopback/.test(err.message), url);
      }
      const open = new WebhookEndpoints({ store: db.store, now, addressPolicy: 'any' });
      await endpoints.setEnabled((await open.create({ url: 'https://10.1.2.3/h' }, OPS)).endpoint.id, false, OPS);

      // A name the save-time check cannot see through, answered by DNS with an internal address (rebinding).
      const receiver = await startReceiver();
      try {
        const rebound = await endpoints.create({ url: `http://hooks.localhost:${receiver.port}/hooks` }, OPS);
        await emit(1);
        const asked: string[] = [];
        await worker({ resolve: (host, _o, cb) => { asked.push(host); cb(null, [{ address: '10.0.0.5', family: 4 }]); } }).drain();
        assert.deepEqual(asked, ['hooks.localhost']);
        assert.equal(receiver.requests.length, 0, 'nothing reached the receiver');
        const [row] = await deliveriesOf(rebound.endpoint.id);
        assert.equal(row!.status, 'pending');
        assert.match(row!.last_error ?? '', /hooks\.localhost resolves only to refused addresses: 10\.0\.0\.5 is a private/);

        // The same name resolving to loopback is sent to: the refusal came from the address, not the name.
        clock += RETRY_SCHEDULE_MS[1]!;
        await worker({ resolve: (_host, _o, cb) => cb(null, [{ address: '127.0.0.1', family: 4 }]) }).drain();
        assert.equal(receiver.requests.length, 1);
        assert.equal((await deliveriesOf(rebound.endpoint.id))[0]!.status, 'succeeded');
        await endpoints.setEnabled(rebound.endpoint.id, false, OPS);
      } finally {
        await receiver.close();
      }
    });

    it('a slow endpoint never delays another one', async () => {
      const slow = await startReceiver();
      const fast = await startReceiver();
      try {
        // The slow endpoint answers nothing until the fast one has had all its deliveries.
        const { promise: slowMayAnswer, resolve: releaseSlow } = Promise.withResolvers<void>();
        let slowRequests = 0;
        slow.handle.current = (_req, res) => {
          slowRequests += 1;
          void slowMayAnswer.then(() => res.writeHead(200).end());
        };
        const a = await endpoints.create({ url: slow.url }, OPS);
        const b = await endpoints.create({ url: fast.url }, OPS);
        await emit(4);
        const sender = worker({ timeoutMs: 30_000, perEndpoint: 2 });
        const draining = sender.drain();
        // Bounded below the senders' timeout, so that a fast endpoint held up by the slow one fails here.
        for (const deadline = Date.now() + 20_000; (await deliveriesOf(b.endpoint.id)).some((r) => r.status !== 'succeeded'); await delay(20)) {
          if (Date.now() > deadline) assert.fail('the fast endpoint waited on the slow one');
        }
        assert.ok(slowRequests <= 2, `the slow endpoint has at most two deliveries in flight, its limit (${slowRequests})`);
        assert.ok((await deliveriesOf(a.endpoint.id)).every((r) => r.status !== 'succeeded'));
        releaseSlow();
        await draining;
        assert.ok((await deliveriesOf(a.endpoint.id)).every((r) => r.status === 'succeeded'));
        assert.equal(slowRequests, 4, 'the slow one took its two rounds of two');
      } finally {
        await slow.close();
        await fast.close();
      }
    });

    it('a delivery leased to a sender that died is sent once its lease lapses; filters pick the events an endpoint gets', async () => {
      const receiver = await startReceiver();
      try {
        const filtered = await endpoints.create({ url: receiver.url, eventTypes: ['user.deleted'], tenantId }, OPS);
        await emit(2, 'user.created');
        await emit(1, 'user.deleted');
        await emit(1, 'user.deleted', null);
        const rows = await deliveriesOf(filtered.endpoint.id);
        assert.equal(rows.length, 1, 'only its type, only its tenant');
        await db.store.db.updateTable('webhook_deliveries').set({ lease_owner: 'dead-host:1:x', lease_expires_at: clock + 60_000 }).where('id', '=', rows[0]!.id).execute();
        await worker().drain();
        assert.equal(receiver.requests.length, 0, 'not while the lease holds');
        clock += 60_001;
        await worker().drain();
        assert.equal(receiver.requests.length, 1);
        assert.equal((await deliveriesOf(filtered.endpoint.id))[0]!.status, 'succeeded');
      } finally {
        await receiver.close();
      }
    });
  });
}
