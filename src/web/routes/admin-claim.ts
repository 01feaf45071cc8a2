import { isConsentingAdmin } from '../../identity/directory-roles.ts';
import type { Pages, PageServices, Viewer } from '../context.ts';
import { viewerActor } from '../actor.ts';
import { viewerOf } from '../guards.ts';
import type { PagePlugin } from '../plugins.ts';
import { formBody } from '../schemas.ts';

/** What the overview says about an organisation left without a Roster admin; undefined when it has one. */
export async function adminClaimOf(users: PageServices['users'], viewer: Viewer): Promise<{ canClaim: boolean } | undefined> {
  // A signed-in viewer is enabled and not deleted: an admin viewer is the live admin the query would look for.
  if (viewer.isAdmin || (await users.hasAdmin(viewer.tenant.id))) return undefined;
  return { canClaim: isConsentingAdmin(viewer.directoryRoles) };
}

export interface AdminClaimRouteOptions {
  pages: Pages;
  users: PageServices['users'];
  audit: PageServices['audit'];
}

/**
 * An organisation can be left without a Roster admin (its only admin was
 * removed from the directory, say). A directory administrator of it, shown by
 * the `wids` of their current sign-in, may then claim the role; once it has
 * an admin, nobody can.
 */
export const adminClaimRoutes: PagePlugin<AdminClaimRouteOptions> = async (app, { pages, users, audit }) => {
  app.post('/app/claim-admin', { schema: { body: formBody({}) }, preHandler: pages.guard('member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const refused = (message: string) =>
      pages.message(request, reply, 403, { title: 'You cannot become the administrator', message: `${message} Nothing was changed.`, links: [{ href: '/app', label: 'Back to Roster', primary: true }] });
    if (!isConsentingAdmin(viewer.directoryRoles)) return refused('Only a Global Administrator or Privileged Role Administrator of your Microsoft Entra directory can claim an organisation without a Roster administrator.');
    if (!(await users.grantFirstAdmin(viewer.tenant.id, viewer.user.id, pages.now()))) return refused(`${viewer.tenantName} already has a Roster administrator.`);
    await audit.record({ actor: viewerActor(request), action: 'user.claim_admin', tenantId: viewer.tenant.id, target: viewer.user.id }, pages.now());
    request.log.warn({ tenant: viewer.tenant.id, user: viewer.user.id }, 'directory administrator claimed an organisation without a Roster admin');
    return reply.redirect('/app', 303);
  });
};
