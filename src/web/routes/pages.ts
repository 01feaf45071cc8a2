import type { FastifyInstance } from 'fastify';
import type { WebContext } from '../context.ts';
import { explainSyncHealth } from '../explain.ts';
import { guard, viewerOf } from '../guards.ts';
import { adminClaimOf } from './admin-claim.ts';
import { snapshotOf } from '../sync-watch.ts';

export function registerPageRoutes(app: FastifyInstance, ctx: WebContext): void {
  app.get('/', async (_request, reply) => ctx.render(reply, 'home', { title: 'Directory sync for Microsoft Entra ID organisations' }));

  app.get('/app', { preHandler: guard(ctx, 'member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const status = await ctx.syncStatus.status(viewer.tenant.id);
    const snapshot = snapshotOf(status, ctx.now());
    const adminClaim = await adminClaimOf(ctx, viewer);
    return ctx.render(reply, 'app', { title: viewer.tenantName, user: viewer.user, tenant: viewer.tenant, snapshot, users: status.users, problem: explainSyncHealth(snapshot.health, snapshot.lastError), adminClaim });
  });
}
