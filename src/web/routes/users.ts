import { Type, type Static } from 'typebox';
import { USER_SORTS, USER_STATES, type DirectoryUser, type UserBoundary, type UserPage, type UserPageRequest, type UserQuery } from '../../store/users.ts';
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
/** A place in the list as the page's own links carry it (see `encodeCursor`). */
const Cursor = Type.Optional(Type.String({ maxLength: 6000, pattern: '^[A-Za-z0-9_-]+$' }));
const ListQuery = Type.Object(
  { ...filterProperties, page: Type.Optional(Type.String({ pattern: '^([1-9][0-9]{0,5}|last)$' })), after: Cursor, before: Cursor },
  { additionalProperties: false },
);
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

/** Longest sort key a cursor may carry: Entra's longest property is 256 characters, and lower-casing may lengthen it. */
const MAX_CURSOR_KEY = 1024;

interface ListCursor {
  boundary: UserBoundary;
  /** How many users came before the page the cursor leads to, as they were counted on the way; null when not known. */
  position: number | null;
}

/**
 * The page's navigation carries the boundary row (its sort key and id) so the next page is
 * a walk of the sort index from there, whatever its depth. The cursor names its sort and
 * direction so it is never applied to another order.
 */
function encodeCursor(filter: UserQuery, boundary: UserBoundary, position: number | null): string {
  return Buffer.from(JSON.stringify([filter.sort, filter.descending ? 'desc' : 'asc', boundary.key, boundary.id, position])).toString('base64url');
}

function decodeCursor(text: string, filter: UserQuery): ListCursor | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== 5) return undefined;
  const [sort, dir, key, id, position] = value as unknown[];
  if (sort !== filter.sort || dir !== (filter.descending ? 'desc' : 'asc')) return undefined;
  if (typeof key !== 'string' || key.length > MAX_CURSOR_KEY || typeof id !== 'string' || id.length === 0 || id.length > 128) return undefined;
  // PostgreSQL text holds no NUL: a key or id with one was never read from the database.
  if (key.includes('\0') || id.includes('\0')) return undefined;
  if (position !== null && (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0)) return undefined;
  return { boundary: { key, id }, position };
}

/**
 * How many users precede the page: known at either end of the list and for a page number;
 * otherwise as counted along the links followed (`carried`), which users added or removed
 * meanwhile may have shifted. Null when not known (the end of a capped search).
 */
function pageStart(found: UserPage, at: UserPageRequest, carried: number | null): number | null {
  const shown = found.users.length;
  let start: number | null;
  if (!found.hasPrevious) start = 0;
  else if (!found.hasNext && !found.totalIsAtLeast) start = found.total - shown;
  else if (at.after) start = carried;
  else if (at.before) start = carried === null ? null : carried - shown;
  else start = at.offset ?? null;
  if (start === null) return null;
  return Math.max(0, found.totalIsAtLeast ? start : Math.min(start, found.total - shown));
}

/** The list's query string: the filter (defaults left out) and where in the list to start. */
function listParams(filter: UserQuery, position: Record<string, string> = {}): string {
  const search = new URLSearchParams();
  if (filter.search) search.set('q', filter.search);
  if (filter.state && filter.state !== 'all') search.set('state', filter.state);
  if (filter.sort && filter.sort !== 'name') search.set('sort', filter.sort);
  if (filter.descending) search.set('dir', 'desc');
  for (const [name, value] of Object.entries(position)) search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : '';
}

function toFilter(query: ListQuery): UserQuery {
  return { search: query.q ?? '', state: query.state ?? 'all', sort: query.sort ?? 'name', descending: query.dir === 'desc' };
}

/** The organisation's users: the list, the CSV export, each user's page, and the admin role. */
export const userRoutes: PagePlugin<UserRouteOptions> = async (app, { pages, users, syncStatus, groups, audit }) => {
  const member = pages.guard('member');
  app.get('/app/users', { schema: { querystring: ListQuery }, preHandler: member }, async (request, reply) => {
    const viewer = viewerOf(request);
    const filter = toFilter(request.query);
    const { after, before, page: pageNumber } = request.query;
    const startOver = [{ href: `/app/users${listParams(filter)}`, label: 'First page of users', primary: true }];
    if ([after, before, pageNumber].filter((value) => value !== undefined).length > 1) {
      return pages.message(request, reply, 400, { title: 'That request was not valid', message: 'Roster could not use the request: a page of users is given by one of "after", "before" or "page", not several.', links: startOver });
    }
    const cursor = after ?? before;
    const place = cursor === undefined ? undefined : decodeCursor(cursor, filter);
    if (cursor !== undefined && !place) {
      return pages.message(request, reply, 400, { title: 'That request was not valid', message: `Roster could not use the request: "${after !== undefined ? 'after' : 'before'}" is not a place in this list of users. Follow the links on the page rather than edit them.`, links: startOver });
    }
    const offset = pageNumber && pageNumber !== 'last' ? (Math.min(Number(pageNumber), MAX_PAGE) - 1) * PAGE_SIZE : 0;
    let at: UserPageRequest = { offset, limit: PAGE_SIZE };
    if (after !== undefined) at = { after: place!.boundary, limit: PAGE_SIZE };
    else if (before !== undefined) at = { before: place!.boundary, limit: PAGE_SIZE };
    else if (pageNumber === 'last') at = { fromEnd: true, limit: PAGE_SIZE };
    const filtered = Boolean(filter.search) || filter.state !== 'all';
    const [found, lastSyncAt] = await Promise.all([users.search(viewer.tenant.id, filter, at, viewer.tenant.userCount), filtered ? null : syncStatus.lastSuccessAt(viewer.tenant.id)]);
    // People who signed in are listed before any sync has read the directory: the page says so rather than look complete.
    const everSynced = filtered || lastSyncAt !== null;
    const { total, totalIsAtLeast } = found;
    const shown = found.users.length;
    const start = pageStart(found, at, place?.position ?? null);
    const link = (position: Record<string, string> = {}) => `/app/users${listParams(filter, position)}`;
    const navigation = {
      first: found.hasPrevious ? link() : null,
      previous: found.hasPrevious && found.first ? link({ before: encodeCursor(filter, found.first, start) }) : null,
      next: found.hasNext && found.last ? link({ after: encodeCursor(filter, found.last, start === null ? null : start + shown) }) : null,
      last: found.hasNext ? link({ page: 'last' }) : null,
    };
    return pages.render(reply, 'users', {
      title: 'Users',
      wide: true,
      users: found.users,
      total,
      totalIsAtLeast,
      range: start !== null && shown > 0 ? { from: start + 1, to: start + shown } : null,
      beyondEnd: shown === 0 && found.hasPrevious,
      navigation,
      filter,
      filtered,
      everSynced,
      link: (changes: Partial<UserQuery>) => `/app/users${listParams({ ...filter, ...changes })}`,
      exportHref: `/app/users.csv${listParams(filter)}`,
      states: USER_STATES,
      sorts: USER_SORTS,
    });
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
