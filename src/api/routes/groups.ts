import { Type } from 'typebox';
import { GROUP_KIND_FILTERS, type DirectoryGroup, type GroupMember, type MemberOf } from '../../store/groups.ts';
import { ApiNotFoundError } from '../errors.ts';
import { requireScope, visibleTenant, type ApiRoutePlugin } from '../context.ts';
import { decodeCursor, DEFAULT_LIMIT, encodeCursor, PageOf, PageParams, pageOf } from '../pagination.ts';
import { GUID_PATTERN, NullableText, problems, TenantParams, TenantUserParams } from '../schemas.ts';

const GroupParams = Type.Object({ tenant_id: Type.String({ pattern: GUID_PATTERN, description: 'The tenant (directory) id.' }), group_id: Type.String({ pattern: GUID_PATTERN, description: 'The group object id.' }) });
const Transitive = Type.Optional(Type.Boolean({ description: 'Through nested groups at any depth (default false: direct only).' }));

const GroupSchema = Type.Object(
  {
    id: Type.String(),
    tenant_id: Type.String(),
    display_name: NullableText,
    description: NullableText,
    kind: Type.String({ description: '`microsoft365`, `security` or `distribution`.' }),
    dynamic: Type.Boolean(),
    security_enabled: Type.Boolean(),
    mail_enabled: Type.Boolean(),
    mail: NullableText,
    deleted_at: Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'date-time' }),
    member_count: Type.Integer({ description: 'Direct members.' }),
  },
  { title: 'Group' },
);
const MemberSchema = Type.Object(
  {
    id: Type.String(),
    type: Type.Union([Type.Literal('user'), Type.Literal('group')]),
    display_name: NullableText,
    detail: Type.Unsafe<string | null>({ type: ['string', 'null'], description: "A user's principal name or mail, a group's mail." }),
    known: Type.Boolean({ description: 'False while Roster has not synced the member itself yet.' }),
    deleted: Type.Boolean(),
  },
  { title: 'GroupMember' },
);
const MembershipSchema = Type.Object(
  { id: Type.String(), display_name: NullableText, kind: NullableText, direct: Type.Boolean({ description: 'False when reached only through a nested group.' }), known: Type.Boolean() },
  { title: 'UserGroup' },
);

const GroupsQuery = Type.Object(
  { ...PageParams, search: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })), kind: Type.Optional(Type.Enum(GROUP_KIND_FILTERS, { description: 'Only groups of this kind (or dynamic, or deleted).' })) },
  { additionalProperties: false },
);
const MembersQuery = Type.Object({ ...PageParams, transitive: Transitive, type: Type.Optional(Type.Enum(['user', 'group'] as const)) }, { additionalProperties: false });
const UserGroupsQuery = Type.Object({ ...PageParams, transitive: Transitive }, { additionalProperties: false });

function groupOut(tenantId: string, g: DirectoryGroup) {
  return { id: g.id, tenant_id: tenantId, display_name: g.displayName, description: g.description, kind: g.kind, dynamic: g.dynamic, security_enabled: g.securityEnabled, mail_enabled: g.mailEnabled, mail: g.mail, deleted_at: g.deletedAt === null ? null : new Date(g.deletedAt).toISOString(), member_count: g.memberCount };
}
const memberOut = (m: GroupMember) => ({ id: m.id, type: m.type, display_name: m.displayName, detail: m.detail, known: m.known, deleted: m.deleted });
const membershipOut = (m: MemberOf) => ({ id: m.id, display_name: m.displayName, kind: m.kind, direct: m.direct, known: m.known });

/** Groups of a tenant, a group's members (direct or transitive) and a user's groups. */
export const groupRoutes: ApiRoutePlugin = async (app, { tenants, users, groups }) => {
  const read = requireScope('directory:read');

  app.get(
    '/tenants/:tenant_id/groups',
    { onRequest: read, schema: { tags: ['groups'], summary: "List a tenant's groups", operationId: 'listGroups', params: TenantParams, querystring: GroupsQuery, response: { 200: PageOf(GroupSchema, 'GroupPage'), ...problems(400, 404) } } },
    async (request) => {
      const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
      const { limit = DEFAULT_LIMIT, search, kind } = request.query;
      const list = `groups:${tenant.id}`;
      const after = decodeCursor(list, request.query.after);
      const page = await groups.list(tenant.id, { ...(search ? { search } : {}), ...(kind ? { kind } : {}) }, { limit, ...(after === undefined ? {} : { after }) });
      return { data: page.items.map((g) => groupOut(tenant.id, g)), next_cursor: page.next === null ? null : encodeCursor(list, page.next) };
    },
  );

  app.get(
    '/tenants/:tenant_id/groups/:group_id',
    { onRequest: read, schema: { tags: ['groups'], summary: 'Get a group', operationId: 'getGroup', params: GroupParams, response: { 200: GroupSchema, ...problems(400, 404) } } },
    async (request) => {
      const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
      const group = await groups.get(tenant.id, request.params.group_id.toLowerCase());
      if (!group) throw new ApiNotFoundError('This tenant has no group with this id.');
      return groupOut(tenant.id, group);
    },
  );

  app.get(
    '/tenants/:tenant_id/groups/:group_id/members',
    { onRequest: read, schema: { tags: ['groups'], summary: "List a group's members", operationId: 'listGroupMembers', params: GroupParams, querystring: MembersQuery, response: { 200: PageOf(MemberSchema, 'GroupMemberPage'), ...problems(400, 404) } } },
    async (request) => {
      const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
      const groupId = request.params.group_id.toLowerCase();
      if (!(await groups.get(tenant.id, groupId))) throw new ApiNotFoundError('This tenant has no group with this id.');
      const { limit = DEFAULT_LIMIT, transitive = false, type } = request.query;
      const list = `members:${tenant.id}:${groupId}:${transitive ? 'transitive' : 'direct'}`;
      const after = decodeCursor(list, request.query.after);
      const page = await groups.members(tenant.id, groupId, { transitive, limit, ...(type ? { type } : {}), ...(after === undefined ? {} : { after }) });
      return { data: page.items.map(memberOut), next_cursor: page.next === null ? null : encodeCursor(list, page.next) };
    },
  );

  app.get(
    '/tenants/:tenant_id/users/:user_id/groups',
    { onRequest: read, schema: { tags: ['groups'], summary: "List a user's groups", operationId: 'listUserGroups', params: TenantUserParams, querystring: UserGroupsQuery, response: { 200: PageOf(MembershipSchema, 'UserGroupPage'), ...problems(400, 404) } } },
    async (request) => {
      const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
      const userId = request.params.user_id.toLowerCase();
      if (!(await users.get(tenant.id, userId))) throw new ApiNotFoundError('This tenant has no user with this id.');
      const { limit = DEFAULT_LIMIT, transitive = false } = request.query;
      const list = `user-groups:${tenant.id}:${userId}:${transitive ? 'transitive' : 'direct'}`;
      const after = decodeCursor(list, request.query.after);
      // A person is in tens of groups, not thousands: the lookup is read whole, then cut at the cursor in id order.
      const all = (await groups.memberOf(tenant.id, userId)).filter((g) => transitive || g.direct).sort((a, b) => (a.id < b.id ? -1 : 1));
      return pageOf(list, all.filter((g) => after === undefined || g.id > after).slice(0, limit + 1), limit, (g) => g.id, membershipOut);
    },
  );
};
