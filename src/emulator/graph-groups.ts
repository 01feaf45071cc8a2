import { firstEntryAfter } from './graph-delta.ts';
import { GRAPH_GROUP_PROPERTIES, memberODataType, type GraphGroup, type GraphGroupProperty, type GroupChangeEntry, type GroupRecord } from './groups.ts';
import type { Tenant } from './model.ts';

/** A parsed group `$select`: the properties (null: all of them) and whether `members` is asked for. */
export interface GroupSelect {
  props: GraphGroupProperty[] | null;
  members: boolean;
}

const GROUP_PROPERTY_BY_LOWER = new Map<string, GraphGroupProperty>(GRAPH_GROUP_PROPERTIES.map((p) => [p.toLowerCase(), p]));

/** Parses a group `$select` (case-insensitive, `*` for all); the unknown name when there is one. */
export function parseGroupSelect(raw: string | undefined, allowMembers: boolean): { ok: true; select: GroupSelect } | { ok: false; property: string } {
  if (raw === undefined || raw.trim() === '') return { ok: true, select: { props: null, members: allowMembers } };
  const props: GraphGroupProperty[] = [];
  let members = false;
  for (const part of raw.split(',')) {
    const name = part.trim();
    if (name === '') continue;
    if (name === '*') {
      props.push(...GRAPH_GROUP_PROPERTIES.filter((p) => !props.includes(p)));
      continue;
    }
    if (allowMembers && name.toLowerCase() === 'members') {
      members = true;
      continue;
    }
    const prop = GROUP_PROPERTY_BY_LOWER.get(name.toLowerCase());
    if (!prop) return { ok: false, property: name };
    if (!props.includes(prop)) props.push(prop);
  }
  // Delta always returns the id.
  if (props.length > 0 && !props.includes('id')) props.push('id');
  return { ok: true, select: { props: props.length > 0 ? props : members ? ['id'] : null, members } };
}

/** The select as it travels in tokens: the property list, with `members` last when asked for. */
export function groupSelectCsv(select: GroupSelect): string {
  if (select.props === null && select.members) return '';
  return [...(select.props ?? GRAPH_GROUP_PROPERTIES), ...(select.members ? ['members'] : [])].join(',');
}

/** A group's JSON with the given properties (in that order). */
export function groupJson(group: GraphGroup, props: readonly GraphGroupProperty[] | null): string {
  if (props === null) return JSON.stringify(group);
  const out: Record<string, unknown> = {};
  for (const p of props) out[p] = group[p];
  return JSON.stringify(out);
}

/** `$metadata#groups` or `$metadata#groups(a,b)`. */
export function groupsContext(graphBase: string, props: readonly GraphGroupProperty[] | null, suffix = ''): string {
  return `${graphBase}/v1.0/$metadata#groups${props ? `(${props.join(',')})` : ''}${suffix}`;
}

// ---- delta rounds ------------------------------------------------------------------

/** Members of one group per page entry: a large group is spread over many pages of a round, as Graph does. */
export const MEMBERS_PER_SLICE = 100;

/** A member entry of `members@delta`: an id that is a member, or one whose membership ended. */
export interface MemberDelta {
  id: string;
  removed: boolean;
}

/** One group of a round, as it was when the round began (its properties are read when a page is served). */
interface RoundGroup {
  id: string;
  /** Only the changed properties, for `return=minimal`; null: all of them (created, restored, listed in full). */
  changed: Set<GraphGroupProperty> | null;
  members: MemberDelta[];
  /** `members@delta` is sent even when empty (a full group); a property-only change sends none. */
  fullMembers: boolean;
}

/**
 * A round, fixed when it begins: which groups it reports and which member
 * entries each carries. Pages are slices of it, so members added or removed
 * during the round cannot shift a slice boundary and hide anyone; those changes
 * go to the next round.
 */
export interface GroupRound {
  groups: RoundGroup[];
  /** Page units in serving order: unit u is slice `unitSlice[u]` of `groups[unitGroup[u]]`. */
  unitGroup: number[];
  unitSlice: number[];
}

/** Groups of a full listing (from = -1) or of the change log window (from, to]. */
export function buildGroupRound(tenant: Tenant, from: number, to: number, withMembers: boolean): GroupRound {
  const groups = from < 0 ? tenant.groups.map((g) => fullRoundGroup(g, withMembers)) : changedGroups(tenant, from, to, withMembers);
  // Slice 0 of every group first, then slice 1 of the groups that have one, and so on: a big group comes back page after page.
  const unitGroup: number[] = [];
  const unitSlice: number[] = [];
  for (let slice = 0, more = true; more; slice++) {
    more = false;
    groups.forEach((group, index) => {
      const slices = withMembers ? Math.max(1, Math.ceil(group.members.length / MEMBERS_PER_SLICE)) : 1;
      if (slice < slices) {
        unitGroup.push(index);
        unitSlice.push(slice);
        if (slice + 1 < slices) more = true;
      }
    });
  }
  return { groups, unitGroup, unitSlice };
}

function fullRoundGroup(group: GroupRecord, withMembers: boolean): RoundGroup {
  return { id: group.props.id, changed: null, members: withMembers ? group.members.map((id) => ({ id, removed: false })) : [], fullMembers: withMembers };
}

function changedGroups(tenant: Tenant, from: number, to: number, withMembers: boolean): RoundGroup[] {
  const touched = new Map<string, { all: boolean; props: Set<GraphGroupProperty>; members: Set<string> }>();
  const log: readonly GroupChangeEntry[] = tenant.groupChangeLog;
  for (let i = firstEntryAfter(log, from); i < log.length && log[i]!.seq <= to; i++) {
    const entry = log[i]!;
    let seen = touched.get(entry.groupId);
    if (!seen) {
      seen = { all: false, props: new Set(), members: new Set() };
      touched.set(entry.groupId, seen);
    }
    if (entry.member !== undefined) seen.members.add(entry.member);
    else if (entry.changed) for (const p of entry.changed) seen.props.add(p);
    else seen.all = true;
  }
  const out: RoundGroup[] = [];
  for (const [id, seen] of touched) {
    const group = tenant.groupsById.get(id);
    if (!group) {
      out.push({ id, changed: null, members: [], fullMembers: false });
      continue;
    }
    if (seen.all) {
      out.push(fullRoundGroup(group, withMembers));
      continue;
    }
    if (!withMembers && seen.props.size === 0) continue;
    // A membership touched more than once in the window is reported as it stands now (removed and re-added: a member).
    const members = withMembers ? [...seen.members].map((m) => ({ id: m, removed: !tenant.memberOf.get(m)?.has(id) })) : [];
    out.push({ id, changed: seen.props, members, fullMembers: false });
  }
  return out;
}

export interface GroupPageShape {
  select: GroupSelect;
  minimal: boolean;
  pageSize: number;
}

/**
 * Items of one page from unit `start`: at most `pageSize` units and never two
 * slices of one group on the same page. Returns the items' JSON and where the
 * next page starts.
 */
export function groupRoundPage(tenant: Tenant, round: GroupRound, start: number, shape: GroupPageShape): { items: string[]; next: number } {
  const items: string[] = [];
  const onPage = new Set<number>();
  let u = start;
  for (; u < round.unitGroup.length && items.length < shape.pageSize; u++) {
    const index = round.unitGroup[u]!;
    if (onPage.has(index)) break;
    onPage.add(index);
    items.push(roundItemJson(tenant, round.groups[index]!, round.unitSlice[u]!, shape));
  }
  return { items, next: u };
}

function roundItemJson(tenant: Tenant, item: RoundGroup, slice: number, shape: GroupPageShape): string {
  const group = tenant.groupsById.get(item.id);
  if (!group) {
    // Gone since the round began (or the reason of the round): reported as it stands now.
    const reason = tenant.deletedGroups.has(item.id) ? 'changed' : 'deleted';
    return `{"id":${JSON.stringify(item.id)},"@removed":{"reason":"${reason}"}}`;
  }
  const selected = shape.select.props ?? GRAPH_GROUP_PROPERTIES;
  let props: readonly GraphGroupProperty[] = selected;
  if (shape.minimal && item.changed !== null) props = selected.filter((p) => p === 'id' || item.changed!.has(p));
  // Later slices repeat the properties, except under return=minimal where the first slice carried them.
  if (shape.minimal && slice > 0) props = ['id'];
  const json = groupJson(group.props, props);
  if (!shape.select.members) return json;
  const members = item.members.slice(slice * MEMBERS_PER_SLICE, (slice + 1) * MEMBERS_PER_SLICE);
  if (members.length === 0 && !item.fullMembers) return json;
  return `${json.slice(0, -1)},"members@delta":[${members.map((m) => memberDeltaJson(tenant, m)).join(',')}]}`;
}

function memberDeltaJson(tenant: Tenant, member: MemberDelta): string {
  const head = `{"@odata.type":"${memberODataType(tenant, member.id)}","id":${JSON.stringify(member.id)}`;
  return member.removed ? `${head},"@removed":{"reason":"deleted"}}` : `${head}}`;
}

const ROUNDS_KEPT = 32;

/**
 * Rounds in progress, shared by every client reading the same window, in a
 * small LRU. A round that fell out (or an emulator restart) is rebuilt from the
 * directory as it is now.
 */
export class GroupRoundCache {
  readonly #byTenant = new WeakMap<Tenant, Map<string, GroupRound>>();

  get(tenant: Tenant, from: number, to: number, withMembers: boolean): GroupRound {
    let rounds = this.#byTenant.get(tenant);
    if (!rounds) {
      rounds = new Map();
      this.#byTenant.set(tenant, rounds);
    }
    const key = `${from}:${to}:${withMembers ? 1 : 0}`;
    let round = rounds.get(key);
    if (round) {
      rounds.delete(key);
    } else {
      round = buildGroupRound(tenant, from, to, withMembers);
      if (rounds.size >= ROUNDS_KEPT) rounds.delete(rounds.keys().next().value!);
    }
    rounds.set(key, round);
    return round;
  }
}
