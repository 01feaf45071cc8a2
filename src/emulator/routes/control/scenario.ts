import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import type { FaultSpec } from '../../faults.ts';
import { DirectoryError } from '../../model.ts';
import { clockSchema, faultSchema, parse, requestsQuerySchema, saveAll, settingsSchema, settingsView, type Params } from './shared.ts';

/** Faults, the request log, the clock, settings, and saving: what a test scenario turns. */
export function registerScenarioControl(scope: FastifyInstance, ctx: EmulatorContext): void {
  const d = ctx.directory;

  // ---- faults ----
  scope.post('/faults', async (request, reply) => {
    const body = parse(faultSchema, request.body);
    const spec: FaultSpec = { target: body.target, kind: body.kind };
    if (body.tenant) spec.tenant = d.requireTenant(body.tenant).id;
    if (body.retryAfter !== undefined) spec.retryAfter = body.retryAfter;
    if (body.delayMs !== undefined) spec.delayMs = body.delayMs;
    if (body.share !== undefined) spec.share = body.share;
    if (body.count !== undefined) spec.count = body.count;
    return reply.code(201).send(ctx.faults.add(spec));
  });
  scope.get('/faults', async () => ({ faults: ctx.faults.list() }));
  scope.delete('/faults', async () => {
    const removed = ctx.faults.list().length;
    ctx.faults.clear();
    return { removed };
  });
  scope.delete('/faults/:id', async (request) => {
    const id = (request.params as Params).id!;
    if (!ctx.faults.remove(id)) throw new DirectoryError(404, `no fault ${id}`);
    return { removed: 1 };
  });

  // ---- requests served ----
  scope.get('/requests', async (request) => {
    const query = parse(requestsQuerySchema, request.query);
    const filter: { tenant?: string; route?: string; sinceMs?: number } = {};
    if (query.tenant) filter.tenant = d.findTenant(query.tenant)?.id ?? query.tenant.toLowerCase();
    if (query.route) filter.route = query.route;
    if (query.sinceMs !== undefined) filter.sinceMs = query.sinceMs;
    const entries = ctx.requestLog.entries(filter);
    return { count: entries.length, entries: query.limit ? entries.slice(-query.limit) : entries };
  });
  scope.delete('/requests', async () => {
    ctx.requestLog.reset();
    return { reset: true };
  });
  scope.get('/stats', async () => {
    const byRoute = ctx.requestLog.countsByRoute();
    return { total: Object.values(byRoute).reduce((a, b) => a + b, 0), byRoute };
  });

  // ---- time and settings ----
  scope.post('/clock', async (request) => {
    const body = parse(clockSchema, request.body);
    ctx.clock.advance(body.advanceSeconds);
    return { offsetSeconds: ctx.clock.offsetSeconds, now: ctx.clock.nowIso() };
  });
  scope.get('/settings', async () => settingsView(ctx));
  scope.put('/settings', async (request) => {
    const body = parse(settingsSchema, request.body);
    if (body.consentPropagationSeconds !== undefined) d.consentPropagationSeconds = body.consentPropagationSeconds;
    if (body.missingServicePrincipalError !== undefined) d.missingServicePrincipalError = body.missingServicePrincipalError;
    return settingsView(ctx);
  });

  // ---- persistence ----
  scope.post('/save', async (_request, reply) => {
    if (!ctx.dataDir) return reply.code(409).send({ error: { code: 'NoDataFolder', message: 'this emulator keeps its state in memory only (started without a data folder)' } });
    const started = performance.now();
    await saveAll(ctx);
    return { saved: true, dataDir: ctx.dataDir, ms: Math.round(performance.now() - started) };
  });
}
