import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import type { TenantOverview } from '../../store/sync-status.ts';
import type { Pages, PageServices } from '../context.ts';
import { explainGroupSyncHealth, explainSyncHealth } from '../explain.ts';
import { viewerOf } from '../guards.ts';
import type { PagePlugin } from '../plugins.ts';
import { formBody, GuidIdParams, HeldDecisionBody } from '../schemas.ts';
import { syncSnapshot } from '../sync-watch.ts';

const OPERATOR_VIEWS = ['all', 'attention', 'suspended', 'gone'] as const;
type OperatorView = (typeof OPERATOR_VIEWS)[number];
const ConsoleQuery = Type.Object({ show: Type.Optional(Type.Enum(OPERATOR_VIEWS)) }, { additionalProperties: false });
const ActionBody = formBody({});

type ActionInput = { tenantId: string; body: Static<typeof HeldDecisionBody> | Static<typeof ActionBody>; request: FastifyRequest; reply: FastifyReply };

export interface OperatorRouteOptions {
  pages: Pages;
  tenants: PageServices['tenants'];
  syncStatus: PageServices['syncStatus'];
  lifecycle: PageServices['lifecycle'];
  sync: PageServices['sync'];
}

/** An active tenant whose sync is not healthy: failing, disconnected, missing a permission, or waiting for a decision. */
function needsAttention(t: TenantOverview): boolean {
  return t.state === 'active' && t.health !== null && t.health !== 'ok';
}

/** The operator console: every tenant, and per tenant its runs, Sync now, suspend and resume, held deletions. */
export const operatorRoutes: PagePlugin<OperatorRouteOptions> = async (app, { pages, tenants, syncStatus, lifecycle, sync }) => {
  const operator = pages.guard('operator');

  app.get('/operator', { schema: { querystring: ConsoleQuery }, preHandler: operator }, async (request, reply) => {
    const [all, groupHealth] = await Promise.all([syncStatus.overview(), syncStatus.groupHealthByTenant()]);
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
    return pages.render(reply, 'operator', { title: 'Operator console', wide: true, tenants: all.filter(inView[show]), totals, show, views, groupHealth });
  });

  app.get('/operator/tenants/:id', { schema: { params: GuidIdParams }, preHandler: operator }, async (request, reply) => {
    const tenant = await tenants.get(request.params.id);
    if (!tenant) return notFound(pages, request, reply);
    const [snapshot, runs, groups, groupRuns] = await Promise.all([syncSnapshot(syncStatus, tenant.id, pages.now()), syncStatus.runs(tenant.id, 50), syncStatus.groupStatus(tenant.id), syncStatus.runs(tenant.id, 20, 'groups')]);
    return pages.render(reply, 'operator-tenant', {
      title: tenant.displayName,
      wide: true,
      tenant,
      snapshot,
      runs,
      users: tenant.userCount,
      problem: explainSyncHealth(snapshot.health, snapshot.lastError),
      groups,
      groupRuns,
      groupProblem: explainGroupSyncHealth(groups.health, groups.lastError),
    });
  });

  /** A POST on one tenant: `run` returns the log line of what it did, or the page it answered with. */
  const action = (path: string, body: typeof ActionBody | typeof HeldDecisionBody, run: (input: ActionInput) => Promise<string | FastifyReply>) =>
    app.post(`/operator/tenants/:id/${path}`, { schema: { params: GuidIdParams, body }, preHandler: operator }, async (request, reply) => {
      const tenant = await tenants.get(request.params.id);
      if (!tenant) return notFound(pages, request, reply);
      const outcome = await run({ tenantId: tenant.id, body: request.body, request, reply });
      if (typeof outcome !== 'string') return outcome;
      const viewer = viewerOf(request);
      request.log.warn({ tenant: tenant.id, operator: `${viewer.tenant.id}:${viewer.user.id}`, action: path }, outcome);
      return reply.redirect(`/operator/tenants/${tenant.id}`, 303);
    });

  action('sync', ActionBody, async ({ tenantId, request, reply }) => {
    const tenant = await tenants.get(tenantId);
    if (tenant?.state !== 'active') return conflict(pages, { tenantId, request, reply }, 'Only an active tenant can be synced.');
    await syncStatus.request(tenantId, pages.now());
    sync.requestSync(tenantId);
    return 'operator requested a sync';
  });
  action('suspend', ActionBody, async ({ tenantId, request, reply }) => {
    const done = await lifecycle.suspend(tenantId, `suspended by an operator on ${new Date(pages.now()).toISOString().slice(0, 10)}`, pages.now());
    return done ? 'tenant suspended' : conflict(pages, { tenantId, request, reply }, 'Only an active tenant can be suspended.');
  });
  action('resume', ActionBody, async ({ tenantId, request, reply }) => {
    if (!(await lifecycle.resume(tenantId, pages.now()))) return conflict(pages, { tenantId, request, reply }, 'Only a suspended tenant can be resumed.');
    sync.requestSync(tenantId);
    return 'tenant resumed';
  });
  action('held', HeldDecisionBody, async ({ tenantId, body, request, reply }) => {
    const [snapshot, groups] = await Promise.all([syncSnapshot(syncStatus, tenantId, pages.now()), syncStatus.groupStatus(tenantId)]);
    // The users' held run is decided first; a held group round next (the engine picks the one held).
    if (snapshot.state !== 'held' && groups.health !== 'held') return conflict(pages, { tenantId, request, reply }, 'This tenant has no sync waiting for a decision.');
    if ('decision' in body && body.decision === 'confirm') await sync.confirmHeldDeletion(tenantId);
    else await sync.discardHeldDeletion(tenantId);
    return 'operator decided a held mass deletion';
  });
};

function notFound(pages: Pages, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return pages.message(request, reply, 404, { title: 'Tenant not found', message: 'Roster has no tenant with this id.', links: [{ href: '/operator', label: 'Back to the console', primary: true }] });
}

function conflict(pages: Pages, { tenantId, request, reply }: Omit<ActionInput, 'body'>, message: string): FastifyReply {
  return pages.message(request, reply, 409, { title: 'Not possible now', message, links: [{ href: `/operator/tenants/${tenantId}`, label: 'Back to the tenant', primary: true }] });
}
