import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { IdTokenValidator } from '../../src/identity/id-token.ts';
import { TenantOnboarding } from '../../src/tenants/onboarding.ts';
import { buildWebApp } from '../../src/web/app.ts';
import { createLogger } from '../../src/web/logger.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { connectToEmulator, type EmulatorConnection } from '../helpers/entra.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';

describe('served over https (production)', () => {
  let emulator: TestEmulator;
  let connection: EmulatorConnection;
  let db: TestStore;
  let app: FastifyInstance;

  before(async () => {
    emulator = await startTestEmulator();
    connection = await connectToEmulator(emulator);
    db = await openTestStore('sqlite');
    const { http, metadata, graphBaseUrl } = connection;
    const entra = connection.app();
    app = await buildWebApp({
      publicUrl: new URL('https://roster.example.com'),
      session: { idleMinutes: 60, absoluteHours: 12 },
      store: db.store,
      entra,
      validator: new IdTokenValidator(http, metadata, entra.clientId),
      onboarding: new TenantOnboarding({ store: db.store, entra, http, graphBaseUrl }),
      logger: createLogger('silent'),
    });
  });
  after(async () => {
    await app.close();
    await db.drop();
    await connection.close();
    await emulator.close();
  });

  it('rule 16: cookies get the __Host- prefix and Secure, HttpOnly, SameSite=Lax, Path=/', async () => {
    const res = await app.inject({ method: 'GET', url: '/signin' });
    assert.equal(res.statusCode, 303);
    const cookie = String(res.headers['set-cookie']);
    assert.match(cookie, /^__Host-roster_binding=/);
    assert.match(cookie, /; Secure/);
    assert.match(cookie, /; HttpOnly/);
    assert.match(cookie, /; SameSite=Lax/);
    assert.match(cookie, /; Path=\//);
    assert.doesNotMatch(cookie, /Domain=/i);
  });

  it('rule 23: CSP without unsafe-inline, frame-ancestors none, nosniff, HSTS over https', async () => {
    const res = await app.inject({ method: 'GET', url: '/' });
    const csp = String(res.headers['content-security-policy']);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.match(String(res.headers['strict-transport-security']), /max-age=31536000/);
  });

  it('rule 24: bad input gets a 400 page with a clear message, never a 500 or a stack', async () => {
    const badPlan = await app.inject({ method: 'POST', url: '/signup', headers: { origin: 'https://roster.example.com', 'content-type': 'application/x-www-form-urlencoded' }, payload: 'plan=platinum' });
    assert.equal(badPlan.statusCode, 400);
    assert.match(badPlan.body, /must be equal to one of the allowed values/);
    const badTenant = await app.inject({ method: 'GET', url: '/signup/callback?admin_consent=True&tenant=not-a-guid&state=x' });
    assert.equal(badTenant.statusCode, 400);
    assert.match(badTenant.body, /tenant/);
    for (const body of [badPlan.body, badTenant.body]) assert.doesNotMatch(body, /at .*\.ts:\d+|node_modules/);
  });
});
