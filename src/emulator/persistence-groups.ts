import { z } from 'zod';
import { GRAPH_GROUP_PROPERTIES, type GraphGroup, type GraphGroupProperty, type GroupChangeEntry, type GroupRecord } from './groups.ts';
import { indexMembership, type Tenant } from './model.ts';

/**
 * The groups part of `state.json`: rows of groups (each with its direct member
 * ids) and of the group change log, written and read next to the users'.
 */
export const GROUP_RECORD_TYPES = new Set(['groups', 'groupChanges']);

const GROUP_FIELDS = [...GRAPH_GROUP_PROPERTIES, 'ordinal', 'members', 'deletedAtMs'] as const;
/** A line holds groups until their members reach this many, so a 25,000-member group is a line of its own. */
const MEMBERS_PER_LINE = 20_000;
const GROUPS_PER_LINE = 500;
const CHANGES_PER_LINE = 5000;

/** The tenant record's group fields. */
export function groupTenantFields(tenant: Tenant): { nextGroupOrdinal: number; purgedGroupIds: string[] } {
  return { nextGroupOrdinal: tenant.nextGroupOrdinal, purgedGroupIds: [...tenant.purgedGroupIds] };
}

/** State saved before groups existed has none of these: they load empty. */
export const groupTenantSchema = {
  nextGroupOrdinal: z.number().int().default(0),
  purgedGroupIds: z.array(z.string()).default([]),
};

/** The records of a tenant's groups and group change log, each small enough for one line. */
export function* groupRecords(tenant: Tenant): Generator<Record<string, unknown>> {
  for (const [state, groups] of [
    ['active', tenant.groups],
    ['deleted', [...tenant.deletedGroups.values()]],
  ] as const) {
    let rows: unknown[][] = [];
    let members = 0;
    for (const group of groups) {
      rows.push(groupRow(group));
      members += group.members.length;
      if (members >= MEMBERS_PER_LINE || rows.length >= GROUPS_PER_LINE) {
        yield { type: 'groups', tenant: tenant.id, state, fields: GROUP_FIELDS, rows };
        rows = [];
        members = 0;
      }
    }
    if (rows.length > 0) yield { type: 'groups', tenant: tenant.id, state, fields: GROUP_FIELDS, rows };
  }
  for (let i = 0; i < tenant.groupChangeLog.length; i += CHANGES_PER_LINE) {
    yield { type: 'groupChanges', tenant: tenant.id, rows: tenant.groupChangeLog.slice(i, i + CHANGES_PER_LINE).map(changeRow) };
  }
}

function groupRow(group: GroupRecord): unknown[] {
  return [...GRAPH_GROUP_PROPERTIES.map((key) => group.props[key]), group.ordinal, group.members, group.deletedAtMs ?? null];
}

function changeRow(entry: GroupChangeEntry): unknown[] {
  if (entry.member !== undefined) return [entry.seq, entry.groupId, null, entry.member];
  return entry.changed ? [entry.seq, entry.groupId, entry.changed] : [entry.seq, entry.groupId];
}

const groupsRecord = z.object({
  type: z.literal('groups'),
  tenant: z.string(),
  state: z.enum(['active', 'deleted']),
  fields: z.array(z.string()),
  rows: z.array(z.array(z.unknown())),
});
const groupChangesRecord = z.object({ type: z.literal('groupChanges'), tenant: z.string(), rows: z.array(z.array(z.unknown())) });

const groupPropsSchema = z.object({
  id: z.string(),
  displayName: z.string(),
  description: z.string().nullable(),
  groupTypes: z.array(z.string()),
  securityEnabled: z.boolean(),
  mailEnabled: z.boolean(),
  mail: z.string().nullable(),
  mailNickname: z.string(),
  membershipRule: z.string().nullable(),
  createdDateTime: z.string(),
});
const changeRowSchema = z.union([
  z.tuple([z.number().int(), z.string()]),
  z.tuple([z.number().int(), z.string(), z.array(z.enum(GRAPH_GROUP_PROPERTIES))]),
  z.tuple([z.number().int(), z.string(), z.null(), z.string()]),
]);

/** Loads one groups record into its tenant; returns what is wrong with it, if anything. */
export function loadGroupRecord(value: unknown, tenantOf: (id: string) => Tenant): string | undefined {
  const type = (value as { type?: unknown }).type;
  if (type === 'groups') {
    const parsed = groupsRecord.safeParse(value);
    if (!parsed.success) return `groups record: ${parsed.error.issues[0]!.message}`;
    const rec = parsed.data;
    const tenant = tenantOf(rec.tenant);
    const index = GROUP_FIELDS.map((f) => rec.fields.indexOf(f));
    if (index.includes(-1)) return `groups lack the fields ${GROUP_FIELDS.filter((_, i) => index[i] === -1).join(', ')}`;
    for (const row of rec.rows) {
      const props: Record<string, unknown> = {};
      GRAPH_GROUP_PROPERTIES.forEach((key, i) => (props[key] = row[index[i]!]));
      const checked = groupPropsSchema.safeParse(props);
      const [ordinal, members, deletedAtMs] = [row[index[GRAPH_GROUP_PROPERTIES.length]!], row[index[GRAPH_GROUP_PROPERTIES.length + 1]!], row[index[GRAPH_GROUP_PROPERTIES.length + 2]!]];
      if (!checked.success || !Number.isSafeInteger(ordinal) || !Array.isArray(members) || !members.every((m) => typeof m === 'string')) return 'a group row is malformed';
      const group: GroupRecord = { props: checked.data as GraphGroup, members: members as string[], ordinal: ordinal as number };
      if (typeof deletedAtMs === 'number') group.deletedAtMs = deletedAtMs;
      for (const member of group.members) indexMembership(tenant, member, group.props.id);
      if (rec.state === 'active') {
        tenant.groups.push(group);
        tenant.groupsById.set(group.props.id, group);
      } else {
        tenant.deletedGroups.set(group.props.id, group);
      }
    }
    return undefined;
  }
  const parsed = groupChangesRecord.safeParse(value);
  if (!parsed.success) return `groupChanges record: ${parsed.error.issues[0]!.message}`;
  const tenant = tenantOf(parsed.data.tenant);
  for (const row of parsed.data.rows) {
    const entry = changeRowSchema.safeParse(row);
    if (!entry.success) return 'a group change-log row is malformed';
    const [seq, groupId, changed, member] = entry.data as [number, string, GraphGroupProperty[] | null | undefined, string | undefined];
    tenant.groupChangeLog.push(member !== undefined ? { seq, groupId, member } : changed ? { seq, groupId, changed } : { seq, groupId });
  }
  return undefined;
}
