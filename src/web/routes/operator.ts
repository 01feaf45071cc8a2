import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TenantOverview } from '../../store/sync-status.ts';
import type { WebContext } from '../context.ts';
import { explainSyncHealth } from '../explain.ts';
import { guard, viewerOf } from '../guards.ts';
import { formBody, guidIdParams, heldDecisionBody } from '../schemas.ts';
import { syncSnapshot } from '../sync-watch.ts';


type TenantRequest = FastifyRequest<{ Params: { id: string } }>;

const OPERATOR_VIEWS = ['all', 'attention', 'suspended', 'gone'] as const;
type OperatorView = (typeof OPERATOR_VIEWS)[number];

/** An active tenant whose sync is not healthy: failing, disconnected, missing a permission, or waiting for a decision. */
function needsAttention(t: TenantOverview): boolean {
  return t.state === 'active' && t.health !== null && t.health !== 'ok';
}

export function registerOperatorRoutes(app: FastifyInstance, ctx: WebContext): void {
  const operator = guard(ctx, 'operator');

  app.get<{ Querystring: { show?: OperatorView } }>(
    '/operator',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { show: { type: 'string', enum: [...OPERATOR_VIEWS] } } } }, preHandler: operator },
    async (request, reply) => {
      const all = await ctx.syncStatus.overview();
      const show = request.query.show ?? 'all';
      const inView: Record<OperatorView, (t: TenantOverview) => boolean> = {
        all: () => true,
        attention: needsAttention,
        suspended: (t) => t.state === 'suspended',
        gone: (t) => t.state === 'offboarded' || t.state === 'disconnected',
      };
      const totals = {
        tenants: all.length,
        active: all.filter((t) => t.state === 'active').length,
        users: all.reduce((n, t) => n + t.users, 0),
        unhealthy: all.filter(needsAttention).length,
      };
      const views = OPERATOR_VIEWS.map((view) => ({ view, count: all.filter(inView[view]).length }));
      return ctx.render(reply, 'operator', { title: 'Operator console', wide: true, tenants: all.filter(inView[show]), totals, show, views });
    },
  );

  app.get<{ Params: { id: string } }>('/operator/tenants/:id', { schema: { params: guidIdParams }, preHandler: operator }, async (request, reply) => {
    const tenant = await ctx.tenants.get(request.params.id);
    if (!tenant) return notFound(ctx, request, reply);
    const [snapshot, runs] = await Promise.all([syncSnapshot(ctx.syncStatus, tenant.id, ctx.now()), ctx.syncStatus.runs(tenant.id, 50)]);
    return ctx.render(reply, 'operator-tenant', { title: tenant.displayName, wide: true, tenant, snapshot, runs, users: tenant.userCount, problem: explainSyncHealth(snapshot.health, snapshot.lastError) });
  });

  const action = (path: string, run: (request: TenantRequest, reply: FastifyReply, tenantId: string) => Promise<string | FastifyReply>) =>
    app.post<{ Params: { id: string }; Body: { _csrf?: string; decision?: 'confirm' | 'discard' } }>(
      `/operator/tenants/:id/${path}`,
      { schema: { params: guidIdParams, body: path === 'held' ? heldDecisionBody : formBody({}) }, preHandler: operator },
      async (request, reply) => {
        const tenant = await ctx.tenants.get(request.params.id);
        if (!tenant) return notFound(ctx, request, reply);
        const outcome = await run(request, reply, tenant.id);
        if (typeof outcome !== 'string') return outcome;
        request.log.warn({ tenant: tenant.id, operator: `${viewerOf(request).tenant.id}:${viewerOf(request).user.id}`, action: path }, outcome);
        return reply.redirect(`/operator/tenants/${tenant.id}`, 303);
      },
    );

  action('sync', async (request, reply, tenantId) => {
    const tenant = await ctx.tenants.get(tenantId);
    if (tenant?.state !== 'active') return conflict(ctx, request, reply, 'Only an active tenant can be synced.');
    await ctx.syncStatus.request(tenantId, ctx.now());
    ctx.sync.requestSync(tenantId);
    return 'operator requested a sync';
  });
  action('suspend', async (request, reply, tenantId) => {
    const done = await ctx.lifecycle.suspend(tenantId, `suspended by an operator on ${new Date(ctx.now()).toISOString().slice(0, 10)}`, ctx.now());
    return done ? 'tenant suspended' : conflict(ctx, request, reply, 'Only an active tenant can be suspended.');
  });
  action('resume', async (request, reply, tenantId) => {
    if (!(await ctx.lifecycle.resume(tenantId, ctx.now()))) return conflict(ctx, request, reply, 'Only a suspended tenant can be resumed.');
    ctx.sync.requestSync(tenantId);
    return 'tenant resumed';
  });
  action('held', async (request, reply, tenantId) => {
    const snapshot = await syncSnapshot(ctx.syncStatus, tenantId, ctx.now());
    if (snapshot.state !== 'held') return conflict(ctx, request, reply, 'This tenant has no sync waiting for a decision.');
    if (request.body && (request.body as { decision?: string }).decision === 'confirm') await ctx.sync.confirmHeldDeletion(tenantId);
    else await ctx.sync.discardHeldDeletion(tenantId);
    return 'operator decided a held mass deletion';
  });
}

function notFound(ctx: WebContext, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return ctx.message(request, reply, 404, { title: 'Tenant not found', message: 'Roster has no tenant with this id.', links: [{ href: '/operator', label: 'Back to the console', primary: true }] });
}

function conflict(ctx: WebContext, request: FastifyRequest, reply: FastifyReply, message: string): FastifyReply {
  return ctx.message(request, reply, 409, { title: 'Not possible now', message, links: [{ href: `/operator/tenants/${(request.params as { id: string }).id}`, label: 'Back to the tenant', primary: true }] });
}
