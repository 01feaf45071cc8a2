import { sql, type Kysely } from 'kysely';
import { active, transitiveGroupsOf } from './groups.ts';
import type { Database, GroupKind, GroupRoleMappingsTable } from './schema.ts';

export type GroupGrant = GroupRoleMappingsTable['grants'];
export type MappedRole = 'admin' | 'member';

/** One chosen group, with what the pages show of it (a group since deleted in Entra is kept, and grants nothing). */
export interface GroupMapping {
  groupId: string;
  grants: GroupGrant;
  displayName: string | null;
  kind: GroupKind | null;
  /** Removed in Entra (soft-deleted) or never synced: its members get nothing from it. */
  inactive: boolean;
  createdBy: string;
  createdAt: number;
}

/** Users whose `mapped_role` is changed per statement. */
const USERS_PER_STATEMENT = 1000;

/** A tenant's group mappings, and the roles and access they give (membership through any depth of nesting counts). */
export class GroupRoleRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async list(tenantId: string): Promise<GroupMapping[]> {
    const rows = await this.#db
      .selectFrom('group_role_mappings as m')
      .leftJoin('groups as g', (join) => join.onRef('g.tenant_id', '=', 'm.tenant_id').onRef('g.id', '=', 'm.group_id'))
      .select(['m.group_id', 'm.grants', 'm.created_by', 'm.created_at', 'g.display_name', 'g.kind', 'g.deleted_at', 'g.id as known'])
      .where('m.tenant_id', '=', tenantId)
      .orderBy('m.grants')
      .orderBy(sql`lower(coalesce(g.display_name, ''))`)
      .orderBy('m.group_id')
      .execute();
    return rows.map((row) => ({
      groupId: row.group_id,
      grants: row.grants,
      displayName: row.display_name,
      kind: row.kind,
      inactive: row.known === null || row.deleted_at !== null,
      createdBy: row.created_by,
      createdAt: Number(row.created_at),
    }));
  }

  /** Adds the mapping; false when it was already there. */
  async add(tenantId: string, groupId: string, grants: GroupGrant, createdBy: string, now: number): Promise<boolean> {
    const inserted = await this.#db
      .insertInto('group_role_mappings')
      .values({ tenant_id: tenantId, group_id: groupId, grants, created_by: createdBy, created_at: now })
      .onConflict((oc) => oc.columns(['tenant_id', 'grants', 'group_id']).doNothing())
      .returning('group_id')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  /** Removes the mapping; false when there was none. */
  async remove(tenantId: string, groupId: string, grants: GroupGrant): Promise<boolean> {
    const result = await this.#db.deleteFrom('group_role_mappings').where('tenant_id', '=', tenantId).where('grants', '=', grants).where('group_id', '=', groupId).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async deleteForTenant(tenantId: string): Promise<void> {
    await this.#db.deleteFrom('group_role_mappings').where('tenant_id', '=', tenantId).execute();
  }

  /** Whether the tenant limits Roster to members of chosen groups. */
  async restricted(tenantId: string): Promise<boolean> {
    const row = await this.#db.selectFrom('group_role_mappings').select('group_id').where('tenant_id', '=', tenantId).where('grants', '=', 'access').limit(1).executeTakeFirst();
    return row !== undefined;
  }

  /** What the chosen groups the member is in (directly or through nesting; deleted groups pass nothing on) grant them. */
  async grantsOf(tenantId: string, memberId: string): Promise<Set<GroupGrant>> {
    const { rows } = await sql<{ grants: GroupGrant }>`
      ${transitiveGroupsOf(tenantId, memberId)}
      select distinct m.grants from group_role_mappings m
      where m.tenant_id = ${tenantId} and m.group_id in (select group_id from up)`.execute(this.#db);
    return new Set(rows.map((row) => row.grants));
  }

  /**
   * The role every user of the tenant gets from the groups mapped to roles:
   * one walk down from the mapped groups (`union` drops rows already reached,
   * so a cycle ends the walk), admin winning over member.
   */
  async mappedRoles(tenantId: string): Promise<Map<string, MappedRole>> {
    const { rows } = await sql<{ member_id: string; admin: number | string }>`
      with recursive reach(member_id, member_type, grants) as (
        select gm.member_id, gm.member_type, m.grants from group_role_mappings m
          join group_members gm on gm.tenant_id = m.tenant_id and gm.group_id = m.group_id
          where m.tenant_id = ${tenantId} and m.grants in ('admin', 'member') and ${active(tenantId, sql`m.group_id`)}
        union
        select gm.member_id, gm.member_type, r.grants from group_members gm join reach r on gm.group_id = r.member_id
          where r.member_type = 'group' and gm.tenant_id = ${tenantId} and ${active(tenantId, sql`r.member_id`)}
      )
      select member_id, max(case when grants = 'admin' then 1 else 0 end) as admin from reach where member_type = 'user' group by member_id`.execute(this.#db);
    return new Map(rows.map((row) => [row.member_id, Number(row.admin) === 1 ? 'admin' : 'member']));
  }

  /** Stores the mapped role of every user of the tenant (absent from `roles`: none); returns the users whose role changed. */
  async storeMappedRoles(tenantId: string, roles: ReadonlyMap<string, MappedRole>, now: number): Promise<string[]> {
    const current = await this.#db.selectFrom('users').select(['id', 'mapped_role']).where('tenant_id', '=', tenantId).where('mapped_role', 'is not', null).execute();
    const changes = new Map<MappedRole | null, string[]>([['admin', []], ['member', []], [null, []]]);
    for (const row of current) if (!roles.has(row.id)) changes.get(null)!.push(row.id);
    const stored = new Map(current.map((row) => [row.id, row.mapped_role]));
    for (const [id, role] of roles) if (stored.get(id) !== role) changes.get(role)!.push(id);
    const changed: string[] = [];
    for (const [role, ids] of changes) {
      for (let i = 0; i < ids.length; i += USERS_PER_STATEMENT) {
        const batch = ids.slice(i, i + USERS_PER_STATEMENT);
        // Users the groups name but Roster has not synced yet get their role when their row arrives (the next round's recomputation).
        const updated = await this.#db.updateTable('users').set({ mapped_role: role, updated_at: now }).where('tenant_id', '=', tenantId).where('id', 'in', batch).returning('id').execute();
        changed.push(...updated.map((row) => row.id));
      }
    }
    return changed;
  }

  /** Stores one user's mapped role (at sign-in). */
  async storeMappedRole(tenantId: string, userId: string, role: MappedRole | null, now: number): Promise<void> {
    await this.#db
      .updateTable('users')
      .set({ mapped_role: role, updated_at: now })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', userId)
      .where(sql<boolean>`coalesce(mapped_role, '') <> ${role ?? ''}`)
      .execute();
  }
}
