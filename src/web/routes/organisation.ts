import { Type } from 'typebox';
import type { Pages, PageServices } from '../context.ts';
import { explainSyncHealth } from '../explain.ts';
import { viewerActor } from '../actor.ts';
import { viewerOf } from '../guards.ts';
import type { PagePlugin } from '../plugins.ts';
import { formBody } from '../schemas.ts';

const LeaveBody = formBody({ confirmName: Type.String({ maxLength: 512 }) });

export interface OrganisationRouteOptions {
  pages: Pages;
  users: PageServices['users'];
  syncStatus: PageServices['syncStatus'];
  lifecycle: PageServices['lifecycle'];
  /** Name of the session cookie, cleared when the organisation leaves. */
  sessionCookie: string;
}

/** The organisation page: connection state, Roster administrators, and leaving Roster. */
export const organisationRoutes: PagePlugin<OrganisationRouteOptions> = async (app, { pages, users, syncStatus, lifecycle, sessionCookie }) => {
  app.get('/app/organisation', { preHandler: pages.guard('member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const [status, admins] = await Promise.all([syncStatus.status(viewer.tenant.id), users.admins(viewer.tenant.id)]);
    const plan = typeof viewer.tenant.signupContext?.plan === 'string' ? viewer.tenant.signupContext.plan : 'team';
    return pages.render(reply, 'organisation', { title: 'Organisation', tenant: viewer.tenant, status, admins, plan, problem: explainSyncHealth(status.health, status.lastError) });
  });

  app.post('/app/organisation/leave', { schema: { body: LeaveBody }, preHandler: pages.guard('admin') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const typed = request.body.confirmName.trim().toLocaleLowerCase();
    if (typed !== viewer.tenant.displayName.trim().toLocaleLowerCase()) {
      return pages.message(request, reply, 400, {
        title: 'Organisation name did not match',
        message: 'To leave Roster, type your organisation\'s name exactly as shown. Nothing was changed.',
        links: [{ href: '/app/organisation', label: 'Back to the organisation page', primary: true }],
      });
    }
    const result = await lifecycle.offboard(viewer.tenant.id, `left Roster (by ${viewer.user.id})`, pages.now(), { actor: viewerActor(request), action: 'organisation.leave', tenantId: viewer.tenant.id });
    request.log.warn({ tenant: viewer.tenant.id, by: viewer.user.id, ...result }, 'organisation offboarded');
    reply.clearCookie(sessionCookie, { path: '/' });
    request.viewer = null;
    return pages.message(request, reply, 200, {
      title: 'Your organisation has left Roster',
      tone: 'ok',
      message: `${viewer.tenant.displayName} is no longer signed up. Roster deleted its copy of ${result.users.toLocaleString('en-GB')} users and ${result.runs.toLocaleString('en-GB')} sync records, and signed everyone out.`,
      next: 'To remove Roster\'s access in Microsoft as well, delete Roster under Enterprise applications in the Microsoft Entra admin center. You can sign up again at any time.',
      links: [{ href: '/', label: 'Home', primary: true }],
    });
  });
};
