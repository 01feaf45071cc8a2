import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { TEST_POSTGRES_ADMIN_URL } from '../helpers/stores.ts';
import { startFaultProxy, type FaultProxy } from './proxy.ts';

/** An upstream that echoes every byte back. */
async function startEcho(): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

async function connect(proxy: FaultProxy): Promise<Socket> {
  const socket = createConnection(proxy.address);
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

/** Resolves with the next `length` bytes the socket receives. */
function read(socket: Socket, length: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (chunk: Buffer) => {
      got += chunk.toString();
      if (got.length >= length) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
  });
}

/** Lets pending socket I/O run (a local round trip takes a few event-loop turns). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Resolves when the socket has closed (`events.once` would reject on the reset that comes first). */
function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** Whether a connection through the proxy is closed before it can echo anything. */
async function isRefused(proxy: FaultProxy): Promise<boolean> {
  const socket = createConnection(proxy.address);
  socket.on('error', () => {});
  const echoed = new Promise<boolean>((resolve) => socket.once('data', () => resolve(false)));
  socket.once('connect', () => socket.write('?'));
  const outcome = await Promise.race([closed(socket).then(() => true), echoed]);
  socket.destroy();
  return outcome;
}

describe('the fault proxy', () => {
  let echo: Server;
  let proxy: FaultProxy;

  before(async () => {
    echo = await startEcho();
    const address = echo.address();
    assert.ok(address && typeof address === 'object');
    proxy = await startFaultProxy({ host: '127.0.0.1', port: address.port });
  });

  after(async () => {
    await proxy.close();
    echo.close();
  });

  it('forwards bytes both ways and counts its connections', async () => {
    const socket = await connect(proxy);
    socket.write('hello');
    assert.equal(await read(socket, 5), 'hello');
    assert.equal(proxy.open, 1);
    socket.destroy();
  });

  it('cut() closes every open connection and, with refuseMs, refuses new ones until it lapses', async () => {
    const first = await connect(proxy);
    const second = await connect(proxy);
    const bothClosed = Promise.all([closed(first), closed(second)]);
    proxy.cut({ refuseMs: 60_000 });
    await bothClosed;
    assert.equal(proxy.open, 0);
    assert.equal(await isRefused(proxy), true, 'refused during refuseMs');
    proxy.accept();
    assert.equal(await isRefused(proxy), false, 'accepted again');
  });

  it('refuse() and accept() switch new connections off and on', async () => {
    proxy.refuse();
    const acceptedBefore = proxy.accepted;
    assert.equal(await isRefused(proxy), true);
    assert.equal(proxy.accepted, acceptedBefore, 'a refused connection is not counted');
    proxy.accept();
    assert.equal(await isRefused(proxy), false);
  });

  it('pause() holds bytes until resume(), and lets them through in order', async () => {
    const socket = await connect(proxy);
    proxy.pause();
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.write('abc');
    socket.write('def');
    await turns(50);
    assert.equal(received, '', 'nothing passes while paused');
    assert.equal(proxy.held, 6, 'the proxy holds what was sent');
    const all = read(socket, 6);
    proxy.resume();
    await all;
    assert.equal(received, 'abcdef');
    socket.destroy();
  });

  it('slow(ms) holds each chunk until that much time has passed, and slow(0) removes the delay', async (t) => {
    const socket = await connect(proxy);
    t.mock.timers.enable({ apis: ['setTimeout'] });
    proxy.slow(150);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.write('x');
    await turns(50);
    assert.equal(received, '', 'held on the way out');
    t.mock.timers.tick(150);
    await turns(50);
    assert.equal(received, '', 'the echo is held on the way back');
    t.mock.timers.tick(150);
    await turns(50);
    assert.equal(received, 'x');
    t.mock.timers.reset();
    proxy.slow(0);
    socket.write('y');
    await read(socket, 1);
    assert.throws(() => proxy.slow(-1), RangeError);
    assert.throws(() => proxy.cut({ refuseMs: Number.NaN }), RangeError);
    socket.destroy();
  });

  it('carries a PostgreSQL session, and a cut ends it with a connection error', async () => {
    const pgTarget = new URL(TEST_POSTGRES_ADMIN_URL);
    const pgProxy = await startFaultProxy({ host: pgTarget.hostname, port: Number(pgTarget.port || 5432) });
    const client = new pg.Client({ connectionString: pgProxy.url(TEST_POSTGRES_ADMIN_URL) });
    const errors: Error[] = [];
    client.on('error', (err) => errors.push(err));
    try {
      await client.connect();
      const { rows } = await client.query<{ n: number }>('select 41 + 1 as n');
      assert.equal(rows[0]?.n, 42);
      const ended = new Promise((resolve) => client.once('end', resolve));
      pgProxy.cut();
      await ended;
      assert.ok(errors.length > 0, 'the client reported the lost connection');
      await assert.rejects(client.query('select 1'));
    } finally {
      await client.end().catch(() => {});
      await pgProxy.close();
    }
  });
});
