import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { IdTokenValidator } from '../../src/identity/id-token.ts';
import { TenantOnboarding } from '../../src/tenants/onboarding.ts';
import { buildWebApp } from '../../src/web/app.ts';
import { createLogger } from '../../src/web/logger.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { connectToEmulator, type EmulatorConnection } from '../helpers/entra.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';

for (const level of ['info', 'debug'] as const) {
  describe(`request logs at ${level}`, () => {
    let emulator: TestEmulator;
    let connection: EmulatorConnection;
    let db: TestStore;
    let app: FastifyInstance;
    const lines: Record<string, unknown>[] = [];

    before(async () => {
      emulator = await startTestEmulator();
      connection = await connectToEmulator(emulator);
      db = await openTestStore('sqlite');
      const { http, metadata, graphBaseUrl } = connection;
      const entra = connection.app();
      const sink = new Writable({
        write(chunk, _encoding, callback) {
          for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
          callback();
        },
      });
      app = await buildWebApp({
        publicUrl: new URL('http://localhost:3000'),
        session: { idleMinutes: 60, absoluteHours: 12 },
        store: db.store,
        entra,
        validator: new IdTokenValidator(http, metadata, entra.clientId),
        onboarding: new TenantOnboarding({ store: db.store, entra, http, graphBaseUrl }),
        logger: createLogger(level, sink),
      });
    });
    after(async () => {
      await app.close();
      await db.drop();
      await connection.close();
      await emulator.close();
    });

    it(`${level === 'info' ? 'one line per request, as it ends' : 'a line as each request arrives and one as it ends'}: method, path without its query, status and time, and no cookie`, async () => {
      lines.length = 0;
      const res = await app.inject({ method: 'GET', url: '/app/users?q=x&code=secret-code', headers: { cookie: 'roster_session=forged-session-value' } });
      assert.equal(res.statusCode, 303, 'a forged session is sent to sign in');
      const requestLines = lines.filter((line) => line.msg === 'incoming request' || line.msg === 'request completed');
      assert.deepEqual(
        requestLines.map((line) => line.msg),
        level === 'info' ? ['request completed'] : ['incoming request', 'request completed'],
      );
      const completed = requestLines.at(-1)!;
      assert.deepEqual(completed.req, { id: completed.reqId, method: 'GET', path: '/app/users' });
      assert.deepEqual(completed.res, { statusCode: 303 });
      assert.equal(typeof completed.responseTime, 'number');
      const text = JSON.stringify(lines);
      assert.doesNotMatch(text, /secret-code|forged-session-value|"cookie"/);
    });
  });
}
