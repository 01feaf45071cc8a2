import type { Pages, PageServices } from '../context.ts';
import { explainSyncHealth } from '../explain.ts';
import { viewerOf } from '../guards.ts';
import type { PagePlugin } from '../plugins.ts';
import { adminClaimOf } from './admin-claim.ts';
import { snapshotOf } from '../sync-watch.ts';

export interface OverviewRouteOptions {
  pages: Pages;
  syncStatus: PageServices['syncStatus'];
  users: PageServices['users'];
}

/** The home page and the signed-in overview. */
export const overviewRoutes: PagePlugin<OverviewRouteOptions> = async (app, { pages, syncStatus, users }) => {
  app.get('/', async (_request, reply) => pages.render(reply, 'home', { title: 'Directory sync for Microsoft Entra ID organisations' }));

  app.get('/app', { preHandler: pages.guard('member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const [status, adminClaim] = await Promise.all([syncStatus.status(viewer.tenant.id), adminClaimOf(users, viewer)]);
    const snapshot = snapshotOf(status, pages.now());
    return pages.render(reply, 'app', { title: viewer.tenantName, user: viewer.user, tenant: viewer.tenant, snapshot, users: status.users, problem: explainSyncHealth(snapshot.health, snapshot.lastError), adminClaim });
  });
};
