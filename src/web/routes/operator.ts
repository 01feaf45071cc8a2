import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import type { TenantOverview } from '../../store/sync-status.ts';
import type { Pages, PageServices } from '../context.ts';
import { explainGroupSyncHealth, explainSyncHealth } from '../explain.ts';
import type { AuditActor } from '../../store/audit.ts';
import { TenantNotFoundError, TenantStateConflictError } from '../../tenants/errors.ts';
import { viewerActor } from '../actor.ts';
import type { PagePlugin } from '../plugins.ts';
import { formBody, GuidIdParams, HeldDecisionBody } from '../schemas.ts';
import { syncSnapshot } from '../sync-watch.ts';

const OPERATOR_VIEWS = ['all', 'attention', 'suspended', 'gone'] as const;
type OperatorView = (typeof OPERATOR_VIEWS)[number];
const ConsoleQuery = Type.Object({ show: Type.Optional(Type.Enum(OPERATOR_VIEWS)) }, { additionalProperties: false });
const ActionBody = formBody({});

type ActionInput = { tenantId: string; request: FastifyRequest; reply: FastifyReply };

export interface OperatorRouteOptions {
  pages: Pages;
  tenants: PageServices['tenants'];
  syncStatus: PageServices['syncStatus'];
  actions: PageServices['actions'];
}

/** An active tenant whose sync is not healthy: failing, disconnected, missing a permission, or waiting for a decision. */
function needsAttention(t: TenantOverview): boolean {
  return t.state === 'active' && t.health !== null && t.health !== 'ok';
}

/** The operator console: every tenant, and per tenant its runs, Sync now, suspend and resume, held deletions (each audited). */
export const operatorRoutes: PagePlugin<OperatorRouteOptions> = async (app, { pages, tenants, syncStatus, actions }) => {
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

  /** A POST on one tenant through the operator actions the API and the CLI share; a refusal is a page, success the tenant page. */
  const action = (path: string, body: typeof ActionBody | typeof HeldDecisionBody, run: (tenantId: string, actor: AuditActor, body: Static<typeof HeldDecisionBody> | Static<typeof ActionBody>) => Promise<unknown>) =>
    app.post(`/operator/tenants/:id/${path}`, { schema: { params: GuidIdParams, body }, preHandler: operator }, async (request, reply) => {
      const tenantId = request.params.id.toLowerCase();
      const actor = viewerActor(request);
      try {
        await run(tenantId, actor, request.body);
      } catch (err) {
        if (err instanceof TenantNotFoundError) return notFound(pages, request, reply);
        if (err instanceof TenantStateConflictError) return conflict(pages, { tenantId, request, reply }, err.message);
        throw err;
      }
      request.log.warn({ tenant: tenantId, operator: actor.id, action: path }, 'operator action');
      return reply.redirect(`/operator/tenants/${tenantId}`, 303);
    });

  action('sync', ActionBody, (tenantId, actor) => actions.requestSync(tenantId, actor));
  action('suspend', ActionBody, (tenantId, actor) => actions.suspend(tenantId, actor));
  action('resume', ActionBody, (tenantId, actor) => actions.resume(tenantId, actor));
  action('held', HeldDecisionBody, (tenantId, actor, body) => actions.decideHeld(tenantId, 'decision' in body && body.decision === 'confirm' ? 'confirm' : 'discard', actor));
};

function notFound(pages: Pages, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return pages.message(request, reply, 404, { title: 'Tenant not found', message: 'Roster has no tenant with this id.', links: [{ href: '/operator', label: 'Back to the console', primary: true }] });
}

function conflict(pages: Pages, { tenantId, request, reply }: ActionInput, message: string): FastifyReply {
  return pages.message(request, reply, 409, { title: 'Not possible now', message, links: [{ href: `/operator/tenants/${tenantId}`, label: 'Back to the tenant', primary: true }] });
}
