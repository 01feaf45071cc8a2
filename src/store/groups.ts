import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database, GroupKind, GroupsTable } from './schema.ts';

export const GROUP_KINDS = ['microsoft365', 'security', 'distribution'] as const satisfies readonly GroupKind[];
export const GROUP_KIND_FILTERS = ['all', ...GROUP_KINDS, 'dynamic', 'deleted'] as const;
export type GroupKindFilter = (typeof GROUP_KIND_FILTERS)[number];

export interface GroupQuery {
  search?: string;
  kind?: GroupKindFilter;
}

/** A group as the pages show it. */
export interface DirectoryGroup {
  id: string;
  displayName: string | null;
  description: string | null;
  groupTypes: string[];
  securityEnabled: boolean;
  mailEnabled: boolean;
  mail: string | null;
  membershipRule: string | null;
  kind: GroupKind;
  dynamic: boolean;
  deletedAt: number | null;
  syncedAt: number | null;
  /** Direct members. */
  memberCount: number;
}

/** A member as a group's pages list it; `known` is false while Roster has not seen the object yet (rule 27). */
export interface GroupMember {
  id: string;
  type: 'user' | 'group';
  displayName: string | null;
  /** The user's principal name or mail, the group's mail. */
  detail: string | null;
  known: boolean;
  deleted: boolean;
}

/** One of a user's groups, reached directly or through nesting. */
export interface MemberOf {
  id: string;
  displayName: string | null;
  kind: GroupKind | null;
  direct: boolean;
  known: boolean;
}

/** A page of a keyset listing: `next` is the key to pass as `after` for the following page. */
export interface KeysetPage<T> {
  items: T[];
  next: string | null;
}

type GroupRow = GroupsTable & { member_count: number | string };

function toDirectoryGroup(row: GroupRow): DirectoryGroup {
  return {
    id: row.id,
    displayName: row.display_name,
    description: row.description,
    groupTypes: row.group_types ? (JSON.parse(row.group_types) as string[]) : [],
    securityEnabled: row.security_enabled === 1,
    mailEnabled: row.mail_enabled === 1,
    mail: row.mail,
    membershipRule: row.membership_rule,
    kind: row.kind,
    dynamic: row.dynamic === 1,
    deletedAt: row.deleted_at === null ? null : Number(row.deleted_at),
    syncedAt: row.synced_at === null ? null : Number(row.synced_at),
    memberCount: Number(row.member_count),
  };
}

/** `LIKE` treats `%` and `_` as wildcards; a search for them means the characters themselves. */
function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The keyset of the groups page: the `groups_by_name` index's key, and the id to break ties. */
function encodeKey(name: string, id: string): string {
  return Buffer.from(JSON.stringify([name, id])).toString('base64url');
}

function decodeKey(key: string | undefined): [string, string] | null {
  if (!key) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(key, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && value.every((part) => typeof part === 'string')) return value as [string, string];
  } catch {
    // An edited or truncated key starts from the beginning rather than failing the page.
  }
  return null;
}

/**
 * Every member of a group through any depth of nesting. A recursive query
 * rather than a maintained closure table: a closure costs a write per
 * (ancestor, member) pair on every membership change, which multiplies the
 * writes of a full sync of ~1,000,000 memberships and of every delta round,
 * while the walk reads one index range per nested group. `union` (not
 * `union all`) drops rows already reached, so a cycle ends the walk instead
 * of looping. The recursive step is a `cross join` from the rows reached so
 * far: SQLite then walks them first and probes the index per row, instead of
 * scanning the tenant's memberships at each step.
 */
function transitiveMembersOf(tenantId: string, groupId: string): RawBuilder<unknown> {
  return sql`
    with recursive reach(member_id, member_type) as (
      select member_id, member_type from group_members where tenant_id = ${tenantId} and group_id = ${groupId}
      union
      select m.member_id, m.member_type from reach r cross join group_members m
        where r.member_type = 'group' and m.tenant_id = ${tenantId} and m.group_id = r.member_id and ${active(tenantId, sql`r.member_id`)}
    )`;
}

/** A soft-deleted group passes no membership on: Entra answers transitive questions from active groups only. */
export function active(tenantId: string, groupId: RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`not exists (select 1 from groups d where d.tenant_id = ${tenantId} and d.id = ${groupId} and d.deleted_at is not null)`;
}

/** Every group a member belongs to through any depth: the walk upwards, along `group_members_by_member`. */
export function transitiveGroupsOf(tenantId: string, memberId: string): RawBuilder<unknown> {
  return sql`
    with recursive up(group_id) as (
      select group_id from group_members where tenant_id = ${tenantId} and member_id = ${memberId} and ${active(tenantId, sql`group_members.group_id`)}
      union
      select m.group_id from up cross join group_members m
        where m.tenant_id = ${tenantId} and m.member_id = up.group_id and m.member_type = 'group' and ${active(tenantId, sql`m.group_id`)}
    )`;
}

/** A tenant's groups and memberships as the pages read them, direct and transitive (rule 24). */
export class GroupRepository {
  readonly #db: Kysely<Database>;
  readonly #like: 'like' | 'ilike';

  constructor(db: Kysely<Database>, engine: 'sqlite' | 'postgres') {
    this.#db = db;
    this.#like = engine === 'postgres' ? 'ilike' : 'like';
  }

  #filtered(tenantId: string, filter: GroupQuery) {
    let q = this.#db.selectFrom('groups').where('groups.tenant_id', '=', tenantId);
    const search = filter.search?.trim();
    if (search) {
      const pattern = sql<string>`${containsPattern(search)} escape '\\'`;
      q = q.where((eb) => eb.or([eb('groups.display_name', this.#like, pattern), eb('groups.description', this.#like, pattern), eb('groups.mail', this.#like, pattern)]));
    }
    const kind = filter.kind ?? 'all';
    if (kind === 'dynamic') q = q.where('groups.dynamic', '=', 1);
    else if (kind === 'deleted') q = q.where('groups.deleted_at', 'is not', null);
    else if (kind !== 'all') q = q.where('groups.kind', '=', kind);
    return q;
  }

  /** A page of groups by name, with their direct member counts. */
  async list(tenantId: string, filter: GroupQuery, page: { after?: string; limit: number }): Promise<KeysetPage<DirectoryGroup>> {
    const nameKey = sql<string>`lower(coalesce(groups.display_name, ''))`;
    let q = this.#filtered(tenantId, filter);
    const after = decodeKey(page.after);
    if (after) q = q.where((eb) => eb.or([eb(nameKey, '>', after[0]), eb.and([eb(nameKey, '=', after[0]), eb('groups.id', '>', after[1])])]));
    const rows = await q
      .selectAll('groups')
      .select((eb) => eb.selectFrom('group_members').select((m) => m.fn.countAll<number>().as('n')).whereRef('group_members.tenant_id', '=', 'groups.tenant_id').whereRef('group_members.group_id', '=', 'groups.id').as('member_count'))
      .orderBy(nameKey)
      .orderBy('groups.id')
      .limit(page.limit + 1)
      .execute();
    const items = rows.slice(0, page.limit).map((row) => toDirectoryGroup(row as GroupRow));
    const last = items.at(-1);
    return { items, next: rows.length > page.limit && last ? encodeKey((last.displayName ?? '').toLowerCase(), last.id) : null };
  }

  async count(tenantId: string, filter: GroupQuery): Promise<number> {
    const row = await this.#filtered(tenantId, filter).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async get(tenantId: string, groupId: string): Promise<DirectoryGroup | undefined> {
    const row = await this.#db
      .selectFrom('groups')
      .selectAll('groups')
      .select((eb) => eb.selectFrom('group_members').select((m) => m.fn.countAll<number>().as('n')).whereRef('group_members.tenant_id', '=', 'groups.tenant_id').whereRef('group_members.group_id', '=', 'groups.id').as('member_count'))
      .where('tenant_id', '=', tenantId)
      .where('id', '=', groupId)
      .executeTakeFirst();
    return row ? toDirectoryGroup(row as GroupRow) : undefined;
  }

  /** A page of a group's members by id: direct, or through any depth (`transitive`), optionally one type only. */
  async members(tenantId: string, groupId: string, options: { transitive: boolean; type?: 'user' | 'group'; after?: string; limit: number }): Promise<KeysetPage<GroupMember>> {
    const source = options.transitive ? sql`reach` : sql`(select member_id, member_type from group_members where tenant_id = ${tenantId} and group_id = ${groupId})`;
    const prefix = options.transitive ? transitiveMembersOf(tenantId, groupId) : sql``;
    const { rows } = await sql<{ member_id: string; member_type: 'user' | 'group'; user_name: string | null; user_detail: string | null; user_deleted: number | string | null; group_name: string | null; group_mail: string | null; group_deleted: number | string | null; user_known: number | string | null; group_known: number | string | null }>`
      ${prefix}
      select r.member_id, r.member_type,
             u.display_name as user_name, coalesce(u.user_principal_name, u.mail) as user_detail, u.deleted_at as user_deleted,
             g.display_name as group_name, g.mail as group_mail, g.deleted_at as group_deleted,
             case when u.id is null then 0 else 1 end as user_known, case when g.id is null then 0 else 1 end as group_known
      from ${source} r
      left join users u on r.member_type = 'user' and u.tenant_id = ${tenantId} and u.id = r.member_id
      left join groups g on r.member_type = 'group' and g.tenant_id = ${tenantId} and g.id = r.member_id
      where r.member_id > ${options.after ?? ''}
        ${options.type ? sql`and r.member_type = ${options.type}` : sql``}
      order by r.member_id
      limit ${options.limit + 1}`.execute(this.#db);
    const items = rows.slice(0, options.limit).map((row): GroupMember => {
      const user = row.member_type === 'user';
      return {
        id: row.member_id,
        type: row.member_type,
        displayName: user ? row.user_name : row.group_name,
        detail: user ? row.user_detail : row.group_mail,
        known: Number(user ? row.user_known : row.group_known) === 1,
        deleted: (user ? row.user_deleted : row.group_deleted) !== null,
      };
    });
    return { items, next: rows.length > options.limit ? (items.at(-1)?.id ?? null) : null };
  }

  /** How many members a group has: direct, or distinct through any depth. */
  async memberCount(tenantId: string, groupId: string, options: { transitive: boolean; type?: 'user' | 'group' }): Promise<number> {
    const prefix = options.transitive ? transitiveMembersOf(tenantId, groupId) : sql``;
    const source = options.transitive ? sql`reach` : sql`(select member_id, member_type from group_members where tenant_id = ${tenantId} and group_id = ${groupId})`;
    const { rows } = await sql<{ n: number | string }>`${prefix} select count(*) as n from ${source} r ${options.type ? sql`where r.member_type = ${options.type}` : sql``}`.execute(this.#db);
    return Number(rows[0]?.n ?? 0);
  }

  /** Every member id of a group through any depth, users and groups. */
  async transitiveMemberIds(tenantId: string, groupId: string): Promise<string[]> {
    const { rows } = await sql<{ member_id: string }>`${transitiveMembersOf(tenantId, groupId)} select member_id from reach order by member_id`.execute(this.#db);
    return rows.map((row) => row.member_id);
  }

  /** "Is this user (or group) in group G", directly or through any depth of nesting. */
  async isMemberTransitively(tenantId: string, groupId: string, memberId: string): Promise<boolean> {
    const { rows } = await sql<{ n: number | string }>`${transitiveGroupsOf(tenantId, memberId)} select count(*) as n from up where group_id = ${groupId}`.execute(this.#db);
    return Number(rows[0]?.n ?? 0) > 0;
  }

  /** "Is this member directly in group G": the plain indexed lookup the transitive one is measured against. */
  async isDirectMember(tenantId: string, groupId: string, memberId: string): Promise<boolean> {
    const row = await this.#db.selectFrom('group_members').select('member_id').where('tenant_id', '=', tenantId).where('group_id', '=', groupId).where('member_id', '=', memberId).executeTakeFirst();
    return row !== undefined;
  }

  /** The groups a user (or group) is in, directly or through nesting, by name. */
  async memberOf(tenantId: string, memberId: string): Promise<MemberOf[]> {
    const { rows } = await sql<{ group_id: string; display_name: string | null; kind: GroupKind | null; direct: number | string; known: number | string }>`
      ${transitiveGroupsOf(tenantId, memberId)}
      select up.group_id, g.display_name, g.kind,
             case when exists (select 1 from group_members d where d.tenant_id = ${tenantId} and d.group_id = up.group_id and d.member_id = ${memberId}) then 1 else 0 end as direct,
             case when g.id is null then 0 else 1 end as known
      from up left join groups g on g.tenant_id = ${tenantId} and g.id = up.group_id
      where up.group_id <> ${memberId}
      order by lower(coalesce(g.display_name, '')), up.group_id`.execute(this.#db);
    return rows.map((row) => ({ id: row.group_id, displayName: row.display_name, kind: row.kind, direct: Number(row.direct) === 1, known: Number(row.known) === 1 }));
  }
}
