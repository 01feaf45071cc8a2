import type { FastifyInstance } from 'fastify';
import { isConsentingAdmin } from '../../identity/directory-roles.ts';
import type { Viewer, WebContext } from '../context.ts';
import { guard, viewerOf } from '../guards.ts';
import { formBody } from '../schemas.ts';

/** What the overview says about an organisation left without a Roster admin; undefined when it has one. */
export async function adminClaimOf(ctx: WebContext, viewer: Viewer): Promise<{ canClaim: boolean } | undefined> {
  if (await ctx.users.hasAdmin(viewer.tenant.id)) return undefined;
  return { canClaim: isConsentingAdmin(viewer.directoryRoles) };
}

/**
 * An organisation can be left without a Roster admin (its only admin was
 * removed from the directory, say). A directory administrator of it, shown by
 * the `wids` of their current sign-in, may then claim the role; once it has
 * an admin, nobody can.
 */
export function registerAdminClaimRoutes(app: FastifyInstance, ctx: WebContext): void {
  app.post<{ Body: { _csrf?: string } }>('/app/claim-admin', { schema: { body: formBody({}) }, preHandler: guard(ctx, 'member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const refused = (message: string) =>
      ctx.message(request, reply, 403, { title: 'You cannot become the administrator', message: `${message} Nothing was changed.`, links: [{ href: '/app', label: 'Back to Roster', primary: true }] });
    if (!isConsentingAdmin(viewer.directoryRoles)) return refused('Only a Global Administrator or Privileged Role Administrator of your Microsoft Entra directory can claim an organisation without a Roster administrator.');
    if (!(await ctx.users.grantFirstAdmin(viewer.tenant.id, viewer.user.id, ctx.now()))) return refused(`${viewer.tenantName} already has a Roster administrator.`);
    request.log.warn({ tenant: viewer.tenant.id, user: viewer.user.id }, 'directory administrator claimed an organisation without a Roster admin');
    return reply.redirect('/app', 303);
  });
}
