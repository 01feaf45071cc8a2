import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { Validator } from '@seriousme/openapi-schema-validator';
import { API_PREFIX, registerApi } from '../../src/api/plugin.ts';
import type { ApiServices } from '../../src/api/context.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** Every route the API plugin registers, as `METHOD /path/{param}`, leaving out the ones hidden from the document (itself and its reference page). */
async function registeredRoutes(): Promise<{ routes: Set<string>; app: FastifyInstance }> {
  const app = Fastify();
  const routes = new Set<string>();
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith(API_PREFIX) || (route.schema as { hide?: boolean } | undefined)?.hide) return;
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      routes.add(`${method} ${route.url.replace(/:([A-Za-z_]+)/g, '{$1}')}`);
    }
  });
  await app.register(rateLimit, { global: false });
  // The services are only reached by requests; listing the routes needs none.
  await registerApi(app, { services: {} as ApiServices, rateLimit: { max: 10, timeWindowMs: 60_000 } });
  await app.ready();
  return { routes, app };
}

describe('the OpenAPI document', () => {
  let roster: TestRoster;
  let document: Record<string, unknown> & { paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown>; parameters?: { name: string }[] }>> };

  before(async () => {
    roster = await startTestRoster();
    const response = await fetch(`${roster.url}/api/v1/openapi.json`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /application\/json/);
    document = (await response.json()) as typeof document;
  });
  after(() => roster.close());

  it('is a valid OpenAPI 3.1 document (checked by @seriousme/openapi-schema-validator)', async () => {
    assert.equal(document.openapi, '3.1.0');
    const result = await new Validator().validate(document as unknown as Parameters<Validator["validate"]>[0]);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2)?.slice(0, 2000));
  });

  it('lists every /api/v1 route and nothing else, each behind the bearer key with its problem responses', async () => {
    const { routes, app } = await registeredRoutes();
    try {
      const documented = new Set(Object.entries(document.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${path}`)));
      assert.ok(routes.size >= 10, `found ${routes.size} routes`);
      assert.deepEqual([...routes].filter((r) => !documented.has(r)), [], 'routes missing from the document');
      assert.deepEqual([...documented].filter((r) => !routes.has(r)), [], 'documented operations that are not routes');
    } finally {
      await app.close();
    }
    assert.deepEqual(document.security, [{ bearer: [] }]);
    assert.deepEqual((document.components as { securitySchemes: unknown }).securitySchemes, { bearer: { type: 'http', scheme: 'bearer', description: 'An API key (roster_sk_...), created by an operator.' } });
    for (const [path, item] of Object.entries(document.paths)) {
      for (const method of METHODS) {
        const operation = item[method];
        if (!operation) continue;
        for (const status of ['401', '403', '429']) assert.ok(operation.responses[status], `${method} ${path} documents ${status}`);
        assert.ok(Object.keys(operation.responses).some((s) => s.startsWith('2')), `${method} ${path} documents its success`);
      }
    }
    const users = document.paths['/api/v1/tenants/{tenant_id}/users']!.get!;
    assert.deepEqual(users.parameters!.map((p) => p.name).sort(), ['after', 'limit', 'search', 'state', 'tenant_id', 'updated_since']);
  });

  it('has a reference page served by Roster itself, with no asset from another site', async () => {
    const page = await fetch(`${roster.url}/api/v1/docs/`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /swagger-ui/i);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.length > 0);
    for (const asset of assets) assert.doesNotMatch(asset, /^(https?:)?\/\//, `${asset} is local`);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.doesNotMatch(csp, /https?:\/\/[^ ;]*(unpkg|jsdelivr|cdnjs)/);
    for (const asset of assets.filter((a) => a.endsWith('.js') || a.endsWith('.css'))) {
      const response = await fetch(new URL(asset, `${roster.url}/api/v1/docs/`));
      assert.equal(response.status, 200, asset);
      assert.ok((await response.arrayBuffer()).byteLength > 0, asset);
    }
  });
});
