import { asciiSlug } from './ascii.ts';
import { DirectoryError, type Tenant } from './model.ts';

/** The properties Graph returns for a group (the ones Roster syncs). */
export interface GraphGroup {
  id: string;
  displayName: string;
  description: string | null;
  groupTypes: string[];
  securityEnabled: boolean;
  mailEnabled: boolean;
  mail: string | null;
  mailNickname: string;
  membershipRule: string | null;
  createdDateTime: string;
}

export const GRAPH_GROUP_PROPERTIES = [
  'id',
  'displayName',
  'description',
  'groupTypes',
  'securityEnabled',
  'mailEnabled',
  'mail',
  'mailNickname',
  'membershipRule',
  'createdDateTime',
] as const satisfies readonly (keyof GraphGroup)[];

export type GraphGroupProperty = (typeof GRAPH_GROUP_PROPERTIES)[number];

/** What Graph returns for `/groups` when no `$select` is given (the emulator's subset of it). */
export const DEFAULT_GROUP_SELECT: readonly GraphGroupProperty[] = GRAPH_GROUP_PROPERTIES;

/** `groupTypes` values Graph knows. */
export const UNIFIED = 'Unified';
export const DYNAMIC_MEMBERSHIP = 'DynamicMembership';
const GROUP_TYPES = new Set([UNIFIED, DYNAMIC_MEMBERSHIP]);

export interface GroupRecord {
  props: GraphGroup;
  /** Direct member ids (users and groups), in the order they were added. */
  members: string[];
  /** Position in the tenant's listing order; stable across edits and restores. */
  ordinal: number;
  /** Emulator time (ms) a Microsoft 365 group went to deleted items. */
  deletedAtMs?: number;
}

/** One entry per group change, so that `/groups/delta` can replay them. */
export interface GroupChangeEntry {
  seq: number;
  groupId: string;
  /** Properties changed by an update. */
  changed?: GraphGroupProperty[];
  /** A member added or removed: delta reports that membership as it is when the round is read. */
  member?: string;
  /** Neither `changed` nor `member`: the whole group (create, restore, deletion). */
}

/** What creating a group takes: Graph's writable properties, plus direct members by id. */
export type GroupInput = Partial<Omit<GraphGroup, 'id' | 'createdDateTime' | 'displayName'>> & {
  displayName: string;
  id?: string;
  createdDateTime?: string;
  members?: string[];
};

export type GroupPatch = Partial<Pick<GraphGroup, 'displayName' | 'description' | 'groupTypes' | 'securityEnabled' | 'mailEnabled' | 'mail' | 'mailNickname' | 'membershipRule'>>;

export type GroupKind = 'microsoft365' | 'security' | 'distribution';

export function isUnified(group: GraphGroup): boolean {
  return group.groupTypes.includes(UNIFIED);
}

export function isDynamic(group: GraphGroup): boolean {
  return group.groupTypes.includes(DYNAMIC_MEMBERSHIP);
}

/** The kind as Entra's portal names it: `Unified` wins, then security, else a distribution list. */
export function groupKind(group: GraphGroup): GroupKind {
  if (isUnified(group)) return 'microsoft365';
  return group.securityEnabled ? 'security' : 'distribution';
}

/** Builds a group's properties from input, filling what Entra fills (nickname from the name, mail for mail-enabled groups). */
export function groupProps(tenant: Tenant, id: string, input: GroupInput, nowIso: string): GraphGroup {
  const groupTypes = [...new Set(input.groupTypes ?? [])];
  const unified = groupTypes.includes(UNIFIED);
  const mailNickname = input.mailNickname ?? (asciiSlug(input.displayName) || id.slice(0, 8));
  const mailEnabled = input.mailEnabled ?? unified;
  const props: GraphGroup = {
    id,
    displayName: input.displayName,
    description: input.description ?? null,
    groupTypes,
    securityEnabled: input.securityEnabled ?? (!unified && !mailEnabled),
    mailEnabled,
    mail: input.mail !== undefined ? input.mail : mailEnabled ? `${mailNickname}@${tenant.defaultDomain}` : null,
    mailNickname,
    membershipRule: input.membershipRule ?? null,
    createdDateTime: input.createdDateTime ?? nowIso,
  };
  checkGroupShape(props);
  return props;
}

/** The combinations Entra refuses, with a message that says what to change. */
export function checkGroupShape(group: GraphGroup): void {
  const bad = (message: string): never => {
    throw new DirectoryError(400, `group ${group.displayName}: ${message}`);
  };
  if (group.displayName.trim() === '') bad('displayName must not be empty');
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(group.mailNickname)) bad('mailNickname must be 1 to 64 letters, digits, dots, dashes or underscores');
  for (const type of group.groupTypes) if (!GROUP_TYPES.has(type)) bad(`groupTypes may hold only ${[...GROUP_TYPES].join(' and ')}, not "${type}"`);
  if (!group.securityEnabled && !group.mailEnabled) bad('a group must be security-enabled, mail-enabled or both');
  if (isUnified(group) && !group.mailEnabled) bad('a Microsoft 365 group (groupTypes Unified) is always mail-enabled');
  if (isDynamic(group) && !group.membershipRule) bad('a dynamic group (groupTypes DynamicMembership) needs a membershipRule');
  if (!isDynamic(group) && group.membershipRule) bad('membershipRule needs DynamicMembership in groupTypes');
  if (group.mailEnabled && !group.mail) bad('a mail-enabled group needs a mail address');
}

/**
 * Every user reachable from a group through nested groups, each once, in
 * breadth-first order. Visited groups are remembered, so a cycle (which Entra
 * should never hold, but a mirror must survive) ends the walk instead of looping.
 */
export function transitiveMembers(tenant: Tenant, groupId: string): { users: string[]; groups: string[] } {
  const users: string[] = [];
  const groups: string[] = [];
  const seenUsers = new Set<string>();
  const seenGroups = new Set<string>([groupId]);
  const queue = [groupId];
  for (let head = 0; head < queue.length; head++) {
    const group = tenant.groupsById.get(queue[head]!);
    if (!group) continue;
    for (const member of group.members) {
      if (tenant.groupsById.has(member)) {
        if (seenGroups.has(member)) continue;
        seenGroups.add(member);
        groups.push(member);
        queue.push(member);
      } else if (!seenUsers.has(member)) {
        seenUsers.add(member);
        users.push(member);
      }
    }
  }
  return { users, groups };
}

/** Every active group a user or group is in, directly or through nesting (cycle-safe), in breadth-first order. */
export function transitiveMemberOf(tenant: Tenant, memberId: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>([memberId]);
  const queue = [memberId];
  for (let head = 0; head < queue.length; head++) {
    for (const groupId of tenant.memberOf.get(queue[head]!) ?? []) {
      if (seen.has(groupId) || !tenant.groupsById.has(groupId)) continue;
      seen.add(groupId);
      out.push(groupId);
      queue.push(groupId);
    }
  }
  return out;
}

/** Active groups a user or group is directly in, in listing order. */
export function directMemberOf(tenant: Tenant, memberId: string): string[] {
  const ids = tenant.memberOf.get(memberId);
  if (!ids) return [];
  return tenant.groups.filter((g) => ids.has(g.props.id)).map((g) => g.props.id);
}

/** `#microsoft.graph.user` or `#microsoft.graph.group`, for a member id (gone objects included). */
export function memberODataType(tenant: Tenant, id: string): string {
  return tenant.groupsById.has(id) || tenant.deletedGroups.has(id) || tenant.purgedGroupIds.has(id) ? '#microsoft.graph.group' : '#microsoft.graph.user';
}
