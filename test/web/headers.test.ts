import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';
import { IdTokenValidator } from '../../src/identity/id-token.ts';
import { TenantOnboarding } from '../../src/tenants/onboarding.ts';
import { buildWebApp } from '../../src/web/app.ts';
import { createLogger } from '../../src/web/logger.ts';
import { securityHeaders } from '../../src/web/security-headers.ts';
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

  it('rule 23: every response carries the same security headers: pages, redirects, error pages, refusals and static files', async () => {
    const responses = await Promise.all([
      app.inject({ method: 'GET', url: '/' }),
      app.inject({ method: 'GET', url: '/signin' }),
      app.inject({ method: 'GET', url: '/no-such-page' }),
      app.inject({ method: 'GET', url: '/signup/callback?admin_consent=True&tenant=not-a-guid&state=x' }),
      app.inject({ method: 'POST', url: '/signout', headers: { 'sec-fetch-site': 'cross-site' } }),
      app.inject({ method: 'GET', url: '/assets/style.css' }),
    ]);
    assert.deepEqual(responses.map((res) => res.statusCode), [200, 303, 404, 400, 403, 200]);
    for (const res of responses) {
      assert.match(String(res.headers['content-security-policy']), /^default-src 'self';/);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.equal(res.headers['x-frame-options'], 'SAMEORIGIN');
      assert.equal(res.headers['referrer-policy'], 'same-origin');
      assert.match(String(res.headers['strict-transport-security']), /max-age=31536000; includeSubDomains/);
    }
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

describe('security headers worked out once', () => {
  function helmetOnAResponse(options: HelmetOptions): Record<string, unknown> {
    const response = new ServerResponse(new IncomingMessage(new Socket()));
    helmet(options)(new IncomingMessage(new Socket()), response, () => {});
    return { ...response.getHeaders() };
  }

  it('are the headers helmet sets on a response for the same options', () => {
    for (const options of [
      {},
      { contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'self'"], formAction: ["'self'", 'https://login.example.com'] } }, strictTransportSecurity: false, crossOriginEmbedderPolicy: false },
      { strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true }, referrerPolicy: { policy: 'same-origin' as const }, xFrameOptions: { action: 'deny' as const } },
    ] satisfies HelmetOptions[]) {
      const once = Object.fromEntries(securityHeaders(options).map(([name, value]) => [name.toLowerCase(), value]));
      assert.deepEqual(once, helmetOnAResponse(options));
    }
  });

  it('refuses options whose headers would depend on the request, at start-up', () => {
    assert.throws(() => securityHeaders({ contentSecurityPolicy: { directives: { scriptSrc: ["'self'", (req) => `'nonce-${String(req.headers.host)}'`] } } }), /cannot read the request/);
  });
});
