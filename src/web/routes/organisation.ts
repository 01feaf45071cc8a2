import { Type } from 'typebox';
import type { Pages, PageServices } from '../context.ts';
import { explainSyncHealth } from '../explain.ts';
import { viewerActor } from '../actor.ts';
import { viewerOf } from '../guards.ts';
import type { PagePlugin } from '../plugins.ts';
import { formBody, GUID_PATTERN } from '../schemas.ts';
import { LastAdminPathError, MappedGroupNotFoundError } from '../../tenants/group-roles.ts';

const LeaveBody = formBody({ confirmName: Type.String({ maxLength: 512 }) });
const OrganisationQuery = Type.Object({ groupSearch: Type.Optional(Type.String({ maxLength: 256 })) });
const GroupMappingBody = formBody({ groupId: Type.String({ pattern: GUID_PATTERN }), grants: Type.Enum(['admin', 'member', 'access']) });
/** Groups offered per search on the organisation page. */
const GROUP_CHOICES = 10;

export interface OrganisationRouteOptions {
  pages: Pages;
  users: PageServices['users'];
  syncStatus: PageServices['syncStatus'];
  lifecycle: PageServices['lifecycle'];
  /** Name of the session cookie, cleared when the organisation leaves. */
  sessionCookie: string;
  groups: PageServices['groups'];
  groupRoles: PageServices['groupRoles'];
}

/** The organisation page: connection state, Roster administrators, roles and access from groups, and leaving Roster. */
export const organisationRoutes: PagePlugin<OrganisationRouteOptions> = async (app, { pages, users, syncStatus, lifecycle, sessionCookie, groups, groupRoles }) => {
  app.get('/app/organisation', { schema: { querystring: OrganisationQuery }, preHandler: pages.guard('member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const groupSearch = request.query.groupSearch?.trim() ?? '';
    const [status, admins, mappings, choices] = await Promise.all([
      syncStatus.status(viewer.tenant.id),
      users.admins(viewer.tenant.id),
      groupRoles.list(viewer.tenant.id),
      viewer.isAdmin && groupSearch ? groups.list(viewer.tenant.id, { search: groupSearch }, { limit: GROUP_CHOICES }).then((page) => page.items.filter((group) => group.deletedAt === null)) : Promise.resolve(null),
    ]);
    const plan = typeof viewer.tenant.signupContext?.plan === 'string' ? viewer.tenant.signupContext.plan : 'team';
    return pages.render(reply, 'organisation', {
      title: 'Organisation',
      tenant: viewer.tenant,
      status,
      admins,
      plan,
      problem: explainSyncHealth(status.health, status.lastError),
      mappings,
      groupSearch,
      choices,
      signerId: viewer.tenant.signedUpByOid,
    });
  });

  for (const [path, change] of [
    ['/app/organisation/group-roles', 'add'],
    ['/app/organisation/group-roles/remove', 'remove'],
  ] as const) {
    app.post(path, { schema: { body: GroupMappingBody }, preHandler: pages.guard('admin') }, async (request, reply) => {
      const viewer = viewerOf(request);
      const { grants } = request.body;
      const groupId = request.body.groupId.toLowerCase();
      const by = { userId: viewer.user.id, actor: viewerActor(request) };
      try {
        await (change === 'add' ? groupRoles.add(viewer.tenant, by, groupId, grants) : groupRoles.remove(viewer.tenant, by, groupId, grants));
      } catch (err) {
        if (!(err instanceof LastAdminPathError || err instanceof MappedGroupNotFoundError)) throw err;
        return pages.message(request, reply, err.status, {
          title: err instanceof LastAdminPathError ? 'Not changed: you would lose your access' : 'Group not found',
          message: `${err.message} Nothing was changed.`,
          links: [{ href: '/app/organisation#group-roles', label: 'Back to the organisation page', primary: true }],
        });
      }
      request.log.info({ tenant: viewer.tenant.id, by: viewer.user.id, group: groupId, grants, change }, 'group mapping changed');
      return reply.redirect('/app/organisation#group-roles', 303);
    });
  }

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
