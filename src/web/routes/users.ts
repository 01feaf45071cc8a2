import { Type, type Static } from 'typebox';
import { USER_SORTS, USER_STATES, type DirectoryUser, type UserQuery } from '../../store/users.ts';
import type { Pages, PageServices } from '../context.ts';
import { viewerActor } from '../actor.ts';
import { viewerOf } from '../guards.ts';
import { sendCsv } from '../csv.ts';
import type { PagePlugin } from '../plugins.ts';
import { formBody, GuidIdParams } from '../schemas.ts';

export { neutraliseFormula } from '../csv.ts';

const PAGE_SIZE = 50;
const MAX_PAGE = 100_000;

const filterProperties = {
  q: Type.Optional(Type.String({ maxLength: 200 })),
  state: Type.Optional(Type.Enum(USER_STATES)),
  sort: Type.Optional(Type.Enum(USER_SORTS)),
  dir: Type.Optional(Type.Enum(['asc', 'desc'])),
};
const ExportQuery = Type.Object(filterProperties, { additionalProperties: false });
const ListQuery = Type.Object({ ...filterProperties, page: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,5}$' })) }, { additionalProperties: false });
type ListQuery = Static<typeof ListQuery>;
const RoleBody = formBody({ role: Type.Enum(['admin', 'member']) });

export interface UserRouteOptions {
  pages: Pages;
  users: PageServices['users'];
  syncStatus: PageServices['syncStatus'];
  /** The user's groups on their page; absent in a product's own use of these routes. */
  groups?: PageServices['groups'];
  audit: PageServices['audit'];
}


/** Columns of the export, in order: what an admin needs to reconcile with other systems. */
const EXPORT_COLUMNS: [string, (u: DirectoryUser) => string][] = [
  ['id', (u) => u.id],
  ['displayName', (u) => u.displayName ?? ''],
  ['userPrincipalName', (u) => u.userPrincipalName ?? ''],
  ['mail', (u) => u.mail ?? ''],
  ['givenName', (u) => u.givenName ?? ''],
  ['surname', (u) => u.surname ?? ''],
  ['jobTitle', (u) => u.jobTitle ?? ''],
  ['department', (u) => u.department ?? ''],
  ['officeLocation', (u) => u.officeLocation ?? ''],
  ['companyName', (u) => u.companyName ?? ''],
  ['employeeId', (u) => u.employeeId ?? ''],
  ['mobilePhone', (u) => u.mobilePhone ?? ''],
  ['businessPhones', (u) => u.businessPhones.join('; ')],
  ['userType', (u) => u.userType ?? ''],
  ['status', (u) => u.status],
  ['rosterRole', (u) => u.rosterRole],
];

function toFilter(query: ListQuery): UserQuery {
  return { search: query.q ?? '', state: query.state ?? 'all', sort: query.sort ?? 'name', descending: query.dir === 'desc' };
}

/** The organisation's users: the list, the CSV export, each user's page, and the admin role. */
export const userRoutes: PagePlugin<UserRouteOptions> = async (app, { pages, users, syncStatus, groups, audit }) => {
  const member = pages.guard('member');
  app.get('/app/users', { schema: { querystring: ListQuery }, preHandler: member }, async (request, reply) => {
    const viewer = viewerOf(request);
    const filter = toFilter(request.query);
    const page = Math.min(Number(request.query.page ?? '1'), MAX_PAGE);
    const filtered = Boolean(filter.search) || filter.state !== 'all';
    const [found, everSynced] = await Promise.all([
      users.search(viewer.tenant.id, filter, { offset: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE }, viewer.tenant.userCount),
      // People who signed in are listed before any sync has read the directory: the page says so rather than look complete.
      filtered ? true : syncStatus.lastSuccessAt(viewer.tenant.id).then((at) => at !== null),
    ]);
    const { total } = found;
    const pageCount = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const params = (changes: Partial<Record<keyof ListQuery, string>>) => {
      const merged = { q: filter.search, state: filter.state, sort: filter.sort, dir: filter.descending ? 'desc' : 'asc', page: String(page), ...changes };
      const search = new URLSearchParams();
      if (merged.q) search.set('q', merged.q);
      if (merged.state && merged.state !== 'all') search.set('state', merged.state);
      if (merged.sort && merged.sort !== 'name') search.set('sort', merged.sort);
      if (merged.dir === 'desc') search.set('dir', 'desc');
      if (merged.page && merged.page !== '1') search.set('page', merged.page);
      const text = search.toString();
      return text ? `?${text}` : '';
    };
    return pages.render(reply, 'users', { title: 'Users', wide: true, users: found.users, total, totalIsAtLeast: found.totalIsAtLeast, page, pages: pageCount, filter, filtered, everSynced, params, states: USER_STATES, sorts: USER_SORTS });
  });

  app.get(
    '/app/users.csv',
    { schema: { querystring: ExportQuery }, preHandler: member },
    async (request, reply) => {
      const viewer = viewerOf(request);
      request.log.info({ tenant: viewer.tenant.id, user: viewer.user.id }, 'users exported');
      return sendCsv(reply, EXPORT_COLUMNS, users.exportAll(viewer.tenant.id, toFilter(request.query)), `roster-users-${new Date(pages.now()).toISOString().slice(0, 10)}.csv`);
    },
  );

  app.get(
    '/app/users/:id',
    { schema: { params: GuidIdParams }, preHandler: member },
    async (request, reply) => {
      const viewer = viewerOf(request);
      // The tenant comes from the session: another tenant's user id finds nothing here.
      const user = await users.detail(viewer.tenant.id, request.params.id.toLowerCase());
      if (!user) {
        return pages.message(request, reply, 404, { title: 'User not found', message: 'There is no user with this id in your organisation.', links: [{ href: '/app/users', label: 'Back to users', primary: true }] });
      }
      // Direct groups and those reached through nesting (rule 24).
      const memberOf = groups ? await groups.memberOf(viewer.tenant.id, user.id) : [];
      return pages.render(reply, 'user', { title: user.displayName ?? user.userPrincipalName ?? 'User', user, isSelf: user.id === viewer.user.id, memberOf });
    },
  );

  app.post(
    '/app/users/:id/role',
    { schema: { params: GuidIdParams, body: RoleBody }, preHandler: pages.guard('admin') },
    async (request, reply) => {
      const viewer = viewerOf(request);
      const id = request.params.id.toLowerCase();
      const user = await users.detail(viewer.tenant.id, id);
      if (!user) return pages.message(request, reply, 404, { title: 'User not found', message: 'There is no user with this id in your organisation.', links: [{ href: '/app/users', label: 'Back to users', primary: true }] });
      if (request.body.role === 'admin' && user.status !== 'active' && user.status !== 'guest') {
        return pages.message(request, reply, 409, { title: 'Not possible', message: 'Only an enabled account can become a Roster administrator.', links: [{ href: `/app/users/${id}`, label: 'Back to the user', primary: true }] });
      }
      if (request.body.role === 'member' && id === viewer.user.id) {
        return pages.message(request, reply, 409, { title: 'Not possible', message: 'You cannot remove your own administrator role: another administrator must do it, so the organisation is never left without one.', links: [{ href: `/app/users/${id}`, label: 'Back', primary: true }] });
      }
      await users.setRole(viewer.tenant.id, id, request.body.role, pages.now());
      await audit.record({ actor: viewerActor(request), action: 'user.role', tenantId: viewer.tenant.id, target: id, detail: { role: request.body.role } }, pages.now());
      request.log.info({ tenant: viewer.tenant.id, by: viewer.user.id, user: id, role: request.body.role }, 'roster role changed');
      return reply.redirect(`/app/users/${id}`, 303);
    },
  );
};
