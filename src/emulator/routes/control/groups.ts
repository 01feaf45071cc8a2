import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { EmulatorContext } from '../../context.ts';
import { DYNAMIC_MEMBERSHIP, groupKind, isDynamic, UNIFIED, type GroupInput, type GroupPatch, type GroupRecord } from '../../groups.ts';
import { DirectoryError, isGuid, type Tenant } from '../../model.ts';
import { parse, type Params } from './shared.ts';

/** The four kinds as the control API and CLI name them, and the Graph properties each sets. */
export const GROUP_KINDS = ['security', 'microsoft365', 'distribution', 'dynamic'] as const;
export type GroupKindName = (typeof GROUP_KINDS)[number];

const KIND_PROPS: Record<GroupKindName, Pick<GroupInput, 'groupTypes' | 'securityEnabled' | 'mailEnabled'>> = {
  security: { groupTypes: [], securityEnabled: true, mailEnabled: false },
  microsoft365: { groupTypes: [UNIFIED], securityEnabled: false, mailEnabled: true },
  distribution: { groupTypes: [], securityEnabled: false, mailEnabled: true },
  dynamic: { groupTypes: [DYNAMIC_MEMBERSHIP], securityEnabled: true, mailEnabled: false },
};

const nullableString = z.string().nullable();
const groupFields = {
  displayName: z.string().min(1),
  description: nullableString,
  groupTypes: z.array(z.enum([UNIFIED, DYNAMIC_MEMBERSHIP])),
  securityEnabled: z.boolean(),
  mailEnabled: z.boolean(),
  mail: nullableString,
  mailNickname: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1 to 64 letters, digits, dots, dashes or underscores'),
  membershipRule: nullableString,
};
export const groupCreateSchema = z
  .strictObject({
    ...groupFields,
    kind: z.enum(GROUP_KINDS),
    id: z.string().refine(isGuid, 'must be a GUID'),
    members: z.array(z.string().min(1)),
  })
  .partial()
  .required({ displayName: true });
export const groupPatchSchema = z.strictObject(groupFields).partial();
const memberSchema = z.strictObject({ member: z.string().min(1) });

/** A group as the control API shows it: Graph's properties, its kind, and its direct members (or how many). */
export function groupView(group: GroupRecord, withMembers = true) {
  return {
    ...group.props,
    kind: isDynamic(group.props) ? 'dynamic' : groupKind(group.props),
    memberCount: group.members.length,
    ...(withMembers ? { members: group.members } : {}),
  };
}

/** Groups and memberships of a tenant: what the `group ...` verbs call. */
export function registerGroupControl(scope: FastifyInstance, ctx: EmulatorContext, tenantOf: (request: FastifyRequest) => Tenant): void {
  const d = ctx.directory;
  const groupRef = (request: FastifyRequest) => (request.params as Params).group!;

  scope.post('/tenants/:tenant/groups', async (request, reply) => {
    const { kind, members, ...body } = parse(groupCreateSchema, request.body);
    const tenant = tenantOf(request);
    const group = d.addGroup(tenant, { ...(kind ? KIND_PROPS[kind] : {}), ...body } as GroupInput);
    // Members by id, UPN or nickname, each checked as it is added; a refused one undoes the group.
    try {
      for (const member of members ?? []) d.addGroupMember(tenant, group.props.id, member);
    } catch (err) {
      d.purgeGroup(tenant, group.props.id);
      throw err;
    }
    return reply.code(201).send(groupView(group));
  });

  scope.get('/tenants/:tenant/groups', async (request) => {
    const tenant = tenantOf(request);
    return {
      tenant: tenant.id,
      groups: tenant.groups.map((g) => ({ ...groupView(g, false), deleted: false })),
      deletedGroups: [...tenant.deletedGroups.values()].map((g) => ({ ...groupView(g, false), deleted: true, deletedDateTime: new Date(g.deletedAtMs ?? 0).toISOString() })),
    };
  });

  scope.get('/tenants/:tenant/groups/:group', async (request) => {
    const tenant = tenantOf(request);
    const deleted = d.findDeletedGroup(tenant, groupRef(request));
    if (deleted && !tenant.groupsById.has(deleted.props.id)) return { ...groupView(deleted), deleted: true };
    return { ...groupView(d.requireGroup(tenant, groupRef(request))), deleted: false };
  });

  scope.patch('/tenants/:tenant/groups/:group', async (request) => {
    const body = parse(groupPatchSchema, request.body) as GroupPatch;
    return groupView(d.editGroup(tenantOf(request), groupRef(request), body));
  });

  scope.delete('/tenants/:tenant/groups/:group', async (request) => {
    const tenant = tenantOf(request);
    const { permanent } = parse(z.object({ permanent: z.enum(['true', 'false']).optional() }), request.query);
    if (permanent === 'true') {
      const group = d.findDeletedGroup(tenant, groupRef(request)) ?? d.requireGroup(tenant, groupRef(request));
      d.purgeGroup(tenant, group.props.id);
      return { id: group.props.id, deleted: 'permanent' };
    }
    return d.deleteGroup(tenant, groupRef(request));
  });

  scope.post('/tenants/:tenant/groups/:group/restore', async (request) => {
    const tenant = tenantOf(request);
    const deleted = d.findDeletedGroup(tenant, groupRef(request));
    if (!deleted) throw new DirectoryError(404, `no deleted group ${groupRef(request)} in tenant ${tenant.id} (only Microsoft 365 groups can be restored)`);
    return groupView(d.restoreGroup(tenant, deleted.props.id));
  });

  scope.post('/tenants/:tenant/groups/:group/members', async (request, reply) => {
    const { member } = parse(memberSchema, request.body);
    const tenant = tenantOf(request);
    d.addGroupMember(tenant, groupRef(request), member);
    return reply.code(201).send(groupView(d.requireGroup(tenant, groupRef(request)), false));
  });

  scope.delete('/tenants/:tenant/groups/:group/members/:member', async (request) => {
    const tenant = tenantOf(request);
    d.removeGroupMember(tenant, groupRef(request), (request.params as Params).member!);
    return groupView(d.requireGroup(tenant, groupRef(request)), false);
  });
}
