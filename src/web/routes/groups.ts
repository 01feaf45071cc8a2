import { Type, type Static } from 'typebox';
import { GROUP_KIND_FILTERS, type GroupMember, type GroupQuery } from '../../store/groups.ts';
import { sendCsv } from '../csv.ts';
import type { Pages, PageServices } from '../context.ts';
import { explainGroupSyncHealth } from '../explain.ts';
import { viewerOf } from '../guards.ts';
import type { PagePlugin } from '../plugins.ts';
import { GUID_PATTERN, GuidIdParams } from '../schemas.ts';

const PAGE_SIZE = 50;
/** Nested groups shown on a group's page; a deeper tree is followed group by group. */
const NESTED_SHOWN = 100;
/** The groups page's keyset: base64url of the last row's sort key. */
const After = Type.Optional(Type.String({ maxLength: 2048, pattern: '^[A-Za-z0-9_-]+$' }));

const ListQuery = Type.Object({ q: Type.Optional(Type.String({ maxLength: 200 })), kind: Type.Optional(Type.Enum(GROUP_KIND_FILTERS)), after: After }, { additionalProperties: false });
type ListQuery = Static<typeof ListQuery>;
const Scope = Type.Optional(Type.Enum(['direct', 'all']));
const DetailQuery = Type.Object({ view: Scope, after: Type.Optional(Type.String({ pattern: GUID_PATTERN })) }, { additionalProperties: false });
const ExportQuery = Type.Object({ view: Scope }, { additionalProperties: false });

export interface GroupRouteOptions {
  pages: Pages;
  groups: PageServices['groups'];
  syncStatus: PageServices['syncStatus'];
}

/** Columns of a group's member export; every cell neutralised as in the users export (names are attacker-controlled). */
const EXPORT_COLUMNS: [string, (m: GroupMember) => string][] = [
  ['id', (m) => m.id],
  ['type', (m) => m.type],
  ['displayName', (m) => m.displayName ?? ''],
  ['userPrincipalNameOrMail', (m) => m.detail ?? ''],
  ['status', (m) => (!m.known ? 'not synced yet' : m.deleted ? 'deleted' : 'active')],
];

function toFilter(query: ListQuery): GroupQuery {
  return { search: query.q ?? '', kind: query.kind ?? 'all' };
}

/** The organisation's groups: the list, each group's members (direct and through nesting), and the members' CSV export. */
export const groupRoutes: PagePlugin<GroupRouteOptions> = async (app, { pages, groups, syncStatus }) => {
  const member = pages.guard('member');

  app.get('/app/groups', { schema: { querystring: ListQuery }, preHandler: member }, async (request, reply) => {
    const viewer = viewerOf(request);
    const filter = toFilter(request.query);
    const [found, total, status] = await Promise.all([
      groups.list(viewer.tenant.id, filter, { after: request.query.after, limit: PAGE_SIZE }),
      groups.count(viewer.tenant.id, filter),
      syncStatus.groupStatus(viewer.tenant.id),
    ]);
    const params = (after: string | null) => {
      const search = new URLSearchParams();
      if (filter.search) search.set('q', filter.search);
      if (filter.kind && filter.kind !== 'all') search.set('kind', filter.kind);
      if (after) search.set('after', after);
      const text = search.toString();
      return text ? `?${text}` : '';
    };
    return pages.render(reply, 'groups', {
      title: 'Groups',
      wide: true,
      groups: found.items,
      next: found.next,
      isFirstPage: !request.query.after,
      total,
      filter,
      filtered: Boolean(filter.search) || filter.kind !== 'all',
      kinds: GROUP_KIND_FILTERS,
      params,
      status,
      problem: explainGroupSyncHealth(status.health, status.lastError),
    });
  });

  app.get('/app/groups/:id', { schema: { params: GuidIdParams, querystring: DetailQuery }, preHandler: member }, async (request, reply) => {
    const viewer = viewerOf(request);
    const id = request.params.id.toLowerCase();
    // The tenant comes from the session: another tenant's group id finds nothing here.
    const group = await groups.get(viewer.tenant.id, id);
    if (!group) return notFound(request, reply);
    const all = request.query.view === 'all';
    const [members, nested, directCount, allUsers] = await Promise.all([
      groups.members(viewer.tenant.id, id, { transitive: all, type: all ? 'user' : undefined, after: request.query.after?.toLowerCase(), limit: PAGE_SIZE }),
      groups.members(viewer.tenant.id, id, { transitive: true, type: 'group', limit: NESTED_SHOWN }),
      groups.memberCount(viewer.tenant.id, id, { transitive: false }),
      groups.memberCount(viewer.tenant.id, id, { transitive: true, type: 'user' }),
    ]);
    return pages.render(reply, 'group', { title: group.displayName ?? 'Group', wide: true, group, members, nested, all, directCount, allUsers, isFirstPage: !request.query.after });
  });

  app.get('/app/groups/:id/members.csv', { schema: { params: GuidIdParams, querystring: ExportQuery }, preHandler: member }, async (request, reply) => {
    const viewer = viewerOf(request);
    const id = request.params.id.toLowerCase();
    if (!(await groups.get(viewer.tenant.id, id))) return notFound(request, reply);
    const all = request.query.view === 'all';
    const tenantId = viewer.tenant.id;
    // Page by page, so a 100,000-member group is never held in memory.
    async function* everyMember(): AsyncGenerator<GroupMember> {
      for (let after: string | undefined; ; ) {
        const page = await groups.members(tenantId, id, { transitive: all, type: all ? 'user' : undefined, after, limit: 1000 });
        yield* page.items;
        if (!page.next) return;
        after = page.next;
      }
    }
    request.log.info({ tenant: tenantId, user: viewer.user.id, group: id, view: all ? 'all' : 'direct' }, 'group members exported');
    return sendCsv(reply, EXPORT_COLUMNS, everyMember(), `roster-group-${id}-${all ? 'all' : 'direct'}-members.csv`);
  });

  function notFound(request: Parameters<Pages['message']>[0], reply: Parameters<Pages['message']>[1]) {
    return pages.message(request, reply, 404, { title: 'Group not found', message: 'There is no group with this id in your organisation.', links: [{ href: '/app/groups', label: 'Back to groups', primary: true }] });
  }
};
