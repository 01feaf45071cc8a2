import { RosterError } from '../errors.ts';
import type { AuditActor } from '../store/audit.ts';
import type { Store } from '../store/database.ts';
import type { GroupGrant, GroupMapping, MappedRole } from '../store/group-roles.ts';
import { repositoriesOf, transaction, type Repositories } from '../store/repositories.ts';
import type { TenantRecord } from '../store/tenants.ts';

/** A change that would leave the admin making it without any path to being an admin who can sign in. */
export class LastAdminPathError extends RosterError {
  constructor(message: string) {
    super(message, { status: 409, code: 'last_admin_path' });
  }
}

export class MappedGroupNotFoundError extends RosterError {
  constructor() {
    super('There is no such group in your organisation (Roster lists the groups its last sync saw).', { status: 404, code: 'group_not_found' });
  }
}

/** What a person's groups make of them: whether they may use Roster, and the role their groups give. */
export interface GroupVerdict {
  admitted: boolean;
  mappedRole: MappedRole | null;
}

/** The admin making a change, as the audit log and the last-admin check need them. */
export interface ActingAdmin {
  userId: string;
  actor: AuditActor;
}

function roleOf(grants: ReadonlySet<GroupGrant>): MappedRole | null {
  return grants.has('admin') ? 'admin' : grants.has('member') ? 'member' : null;
}

/**
 * Whether the tenant's access list lets the person in (checked on every
 * request: the group walk only when the tenant has a list). `hasAccessList`
 * is passed when the caller read it already.
 */
export async function admits(repos: Repositories, tenant: TenantRecord, userId: string, hasAccessList?: boolean): Promise<boolean> {
  if (userId === tenant.signedUpByOid || !(hasAccessList ?? (await repos.groupRoles.restricted(tenant.id)))) return true;
  return (await repos.groupRoles.grantsOf(tenant.id, userId)).has('access');
}

/** A person's verdict from their groups: the person who signed the tenant up is always let in. */
export async function verdictOf(repos: Repositories, tenant: TenantRecord, userId: string): Promise<GroupVerdict> {
  const [grants, restricted] = await Promise.all([repos.groupRoles.grantsOf(tenant.id, userId), repos.groupRoles.restricted(tenant.id)]);
  return { admitted: !restricted || grants.has('access') || userId === tenant.signedUpByOid, mappedRole: roleOf(grants) };
}

/**
 * After a tenant's sync round: every user's mapped role recomputed from the
 * groups as they now are, and the sessions of people the access list no
 * longer lets in ended (as for users a sync disabled, rule 19).
 */
export async function reconcileGroupRoles(repos: Repositories, tenant: TenantRecord, now: number): Promise<{ roleChanges: number; sessionsEnded: number }> {
  const changed = await repos.groupRoles.storeMappedRoles(tenant.id, await repos.groupRoles.mappedRoles(tenant.id), now);
  if (!(await repos.groupRoles.restricted(tenant.id))) return { roleChanges: changed.length, sessionsEnded: 0 };
  const refused: string[] = [];
  for (const userId of await repos.sessions.userIdsOf(tenant.id)) if (!(await admits(repos, tenant, userId))) refused.push(userId);
  return { roleChanges: changed.length, sessionsEnded: refused.length ? await repos.sessions.destroyForUsers(tenant.id, refused) : 0 };
}

const GRANT_WORDS: Record<GroupGrant, string> = { admin: 'Roster administrators', member: 'Roster members', access: 'the people allowed to use Roster' };

/**
 * Roles and access from Entra groups, as a tenant's admins set them on the
 * organisation page. Every change is audited in its own transaction (rule 35)
 * and refused when it would leave the acting admin without an admin path.
 */
export class GroupRoles {
  readonly #store: Store;
  readonly #repos: Repositories;
  readonly #now: () => number;

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#repos = repositoriesOf(store);
    this.#now = now;
  }

  list(tenantId: string): Promise<GroupMapping[]> {
    return this.#repos.groupRoles.list(tenantId);
  }

  verdict(tenant: TenantRecord, userId: string): Promise<GroupVerdict> {
    return verdictOf(this.#repos, tenant, userId);
  }

  admits(tenant: TenantRecord, userId: string, hasAccessList?: boolean): Promise<boolean> {
    return admits(this.#repos, tenant, userId, hasAccessList);
  }

  /** At sign-in: the role the person's groups give them takes effect. */
  recordMappedRole(tenantId: string, userId: string, role: MappedRole | null): Promise<void> {
    return this.#repos.groupRoles.storeMappedRole(tenantId, userId, role, this.#now());
  }

  async add(tenant: TenantRecord, by: ActingAdmin, groupId: string, grants: GroupGrant): Promise<boolean> {
    return this.#change(tenant, by, async (tx) => {
      const group = await tx.groups.get(tenant.id, groupId);
      if (!group || group.deletedAt !== null) throw new MappedGroupNotFoundError();
      if (!(await tx.groupRoles.add(tenant.id, groupId, grants, by.actor.id, this.#now()))) return false;
      await tx.audit.record({ actor: by.actor, action: 'group_role.add', tenantId: tenant.id, target: groupId, detail: { grants, group: group.displayName } }, this.#now());
      return true;
    });
  }

  async remove(tenant: TenantRecord, by: ActingAdmin, groupId: string, grants: GroupGrant): Promise<boolean> {
    return this.#change(tenant, by, async (tx) => {
      if (!(await tx.groupRoles.remove(tenant.id, groupId, grants))) return false;
      await tx.audit.record({ actor: by.actor, action: 'group_role.remove', tenantId: tenant.id, target: groupId, detail: { grants } }, this.#now());
      return true;
    });
  }

  /** Applies the change and the roles it gives at once, then refuses it (nothing kept) if the acting admin would lose their last admin path. */
  async #change(tenant: TenantRecord, by: ActingAdmin, apply: (tx: Repositories) => Promise<boolean>): Promise<boolean> {
    return transaction(this.#store, async (tx) => {
      if (!(await apply(tx))) return false;
      await reconcileGroupRoles(tx, tenant, this.#now());
      const [admitted, user] = await Promise.all([admits(tx, tenant, by.userId), tx.users.get(tenant.id, by.userId)]);
      if (!admitted) {
        throw new LastAdminPathError(`This would shut you out: you are not in any of the groups allowed to use Roster. Add a group you are in to ${GRANT_WORDS.access} first.`);
      }
      if (user?.rosterRole !== 'admin' && by.userId !== tenant.signedUpByOid) {
        throw new LastAdminPathError('This would remove your own administrator role: no other group or assignment makes you a Roster administrator. Ask another administrator to make this change.');
      }
      return true;
    });
  }
}
