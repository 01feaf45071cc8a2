// Over 400 lines on purpose: the directory's records and the one class every mutation goes through, so the change logs (and delta) cannot miss one.
import { randomUUID } from 'node:crypto';
import type { Clock } from './clock.ts';
import { EmulatorError } from './errors.ts';
import { checkGroupShape, groupProps, isUnified, transitiveMembers, type GraphGroup, type GroupChangeEntry, type GroupInput, type GroupPatch, type GroupRecord } from './groups.ts';

/** Personal Microsoft accounts all carry this tenant id. */
export const CONSUMER_TENANT_ID = '9188040d-6c67-4c5b-b112-36a304b66dad';

/** The properties Graph returns for a user (the ones Roster syncs). */
export interface GraphUser {
  id: string;
  displayName: string;
  givenName: string | null;
  surname: string | null;
  mail: string | null;
  userPrincipalName: string;
  jobTitle: string | null;
  department: string | null;
  officeLocation: string | null;
  accountEnabled: boolean;
  userType: 'Member' | 'Guest';
  createdDateTime: string;
  employeeId: string | null;
  companyName: string | null;
  mobilePhone: string | null;
  businessPhones: string[];
}

export const GRAPH_USER_PROPERTIES = [
  'id',
  'displayName',
  'givenName',
  'surname',
  'mail',
  'userPrincipalName',
  'jobTitle',
  'department',
  'officeLocation',
  'accountEnabled',
  'userType',
  'createdDateTime',
  'employeeId',
  'companyName',
  'mobilePhone',
  'businessPhones',
] as const satisfies readonly (keyof GraphUser)[];

export type GraphUserProperty = (typeof GRAPH_USER_PROPERTIES)[number];

/** What real Graph returns for `/users` when no `$select` is given. */
export const DEFAULT_USER_SELECT: readonly GraphUserProperty[] = [
  'businessPhones',
  'displayName',
  'givenName',
  'jobTitle',
  'mail',
  'mobilePhone',
  'officeLocation',
  'surname',
  'userPrincipalName',
  'id',
];

export interface UserRecord {
  props: GraphUser;
  /** Sign-in page password (emulator only; plain text on purpose: it is test data). */
  password: string;
  /** Global administrator of its tenant: may grant admin consent. */
  admin: boolean;
  /** Position in the tenant's listing order; stable across edits and restores. */
  ordinal: number;
  /** Serialised default-shape JSON, rebuilt lazily after an edit. */
  cachedJson?: string;
  /**
   * JSON of every property in schema order: the shape of a full sync, the
   * emulator's hot path. Made when the user is written, so listings only
   * concatenate (absent after loading saved state until first served).
   */
  fullJson?: string;
  /** Serialised JSON for the last other `$select` served (`cachedSelect` names it); dropped on edit too. */
  cachedSelect?: string;
  cachedSelectJson?: string;
}

export interface ServicePrincipal {
  id: string;
  appId: string;
  /** Application permissions granted by an admin (e.g. `User.Read.All`). */
  appRoles: string[];
  /** Epoch ms; tokens are refused with AADSTS65001 until consent has propagated. */
  readyAtMs: number;
  createdDateTime: string;
}

/** One entry per user change, so that delta queries can replay them. */
export interface ChangeEntry {
  seq: number;
  userId: string;
  /** Properties changed by an update; absent for create, restore and removals (meaning "all"). */
  changed?: GraphUserProperty[];
}

/** How a change notification names a change to a user or group. */
export type ChangeKind = 'updated' | 'deleted';

/** One change as change notifications see it: which resource collection, which object, and its kind. */
export interface DirectoryChange {
  tenant: Tenant;
  /** The subscribable collection the object belongs to: `users` or `groups`. */
  resource: string;
  id: string;
  kind: ChangeKind;
}

export type DirectoryChangeListener = (change: DirectoryChange) => void;

export interface Tenant {
  id: string;
  displayName: string;
  /** Verified domains; the first is the initial `*.onmicrosoft.com` domain. */
  domains: string[];
  defaultDomain: string;
  countryLetterCode: string;
  createdDateTime: string;
  /** Active users, in listing order (ascending `ordinal`). */
  users: UserRecord[];
  usersById: Map<string, UserRecord>;
  /** Soft-deleted users (restorable), by id. */
  deletedUsers: Map<string, UserRecord>;
  /** Permanently deleted ids, so delta can report them. */
  purgedUserIds: Set<string>;
  nextOrdinal: number;
  changeLog: ChangeEntry[];
  seq: number;
  /** Delta tokens issued before this sequence number are expired (410). */
  deltaFloor: number;
  servicePrincipals: Map<string, ServicePrincipal>;
  /** Active groups, in listing order (ascending `ordinal`). */
  groups: GroupRecord[];
  groupsById: Map<string, GroupRecord>;
  /** Soft-deleted Microsoft 365 groups (restorable, with their members), by id. */
  deletedGroups: Map<string, GroupRecord>;
  /** Permanently deleted group ids, so delta can report them. */
  purgedGroupIds: Set<string>;
  nextGroupOrdinal: number;
  /** Group changes; sequence numbers are shared with `changeLog`, so one delta floor expires both. */
  groupChangeLog: GroupChangeEntry[];
  /**
   * Reverse index of memberships: member id -> ids of the groups (active or deleted) that hold it.
   * Arrays, not sets: a user is in a handful of groups, and a million small sets cost seconds to build.
   */
  memberOf: Map<string, string[]>;
}

export interface ClientSecret {
  id: string;
  value: string;
  expiresAtMs: number;
  displayName?: string;
  startMs?: number;
}

export interface ClientCertificate {
  id: string;
  /** Base64url SHA-1 thumbprint (`x5t`). */
  x5t: string;
  /** Base64url SHA-256 thumbprint (`x5t#S256`). */
  x5tS256: string;
  /** PEM of the public key, to verify client assertions. */
  publicKeyPem: string;
  expiresAtMs: number;
  displayName?: string;
  startMs?: number;
}

/** Which groups and roles an app's tokens list (the registration's `groupMembershipClaims`). */
export const GROUP_MEMBERSHIP_CLAIMS = ['None', 'SecurityGroup', 'DirectoryRole', 'ApplicationGroup', 'All'] as const;
export type GroupMembershipClaims = (typeof GROUP_MEMBERSHIP_CLAIMS)[number];

/** Role template id of Global Administrator: the role every user marked `admin` holds. */
export const GLOBAL_ADMINISTRATOR_ROLE_TEMPLATE_ID = '62e90394-69f5-4237-9190-012177145e10';

/** The directory role template ids a user holds (what Entra lists in `wids`). */
export function directoryRoleTemplateIds(user: UserRecord): string[] {
  return user.admin ? [GLOBAL_ADMINISTRATOR_ROLE_TEMPLATE_ID] : [];
}

export interface AppRegistration {
  appId: string;
  displayName: string;
  homeTenantId: string | null;
  signInAudience: 'AzureADMyOrg' | 'AzureADMultipleOrgs';
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  secrets: ClientSecret[];
  certificates: ClientCertificate[];
  /** Application permissions on Microsoft Graph that admin consent grants. */
  requiredAppRoles: string[];
  disabled: boolean;
  /** `DirectoryRole`, `All` and `SecurityGroup` put the user's directory roles in ID tokens (`wids`). */
  groupMembershipClaims: GroupMembershipClaims;
  /** Graph object id (`/applications/{id}`), set for registrations made or read through Graph. */
  objectId?: string;
  /** May redeem a device code without a client credential (Graph's `isFallbackPublicClient`). */
  publicClient?: boolean;
  /** Consented in every tenant from the start, as Microsoft's own clients are. */
  firstParty?: boolean;
  /** Graph's `optionalClaims`, kept as written. */
  optionalClaims?: OptionalClaims | null;
  createdDateTime?: string;
}

export interface OptionalClaim {
  name: string;
  source?: string | null;
  essential?: boolean;
  additionalProperties?: string[];
}

export interface OptionalClaims {
  idToken: OptionalClaim[];
  accessToken: OptionalClaim[];
  saml2Token: OptionalClaim[];
}

export type UserInput = Partial<Omit<GraphUser, 'id' | 'createdDateTime'>> & {
  id?: string;
  createdDateTime?: string;
  password?: string;
  admin?: boolean;
};

export type TenantInput = {
  id?: string;
  displayName: string;
  domains: string[];
  countryLetterCode?: string;
  createdDateTime?: string;
};

/** A directory operation refused (unknown tenant or user, a taken name, ...): the control API shows it as is. */
export class DirectoryError extends EmulatorError {
  constructor(status: number, message: string) {
    super(status, 'DirectoryError', message, { expose: true });
  }
}

/**
 * Every property in schema order. The record's own object is built in that
 * order, so stringifying it is both right and the fastest way.
 */
export function fullUserJson(props: GraphUser): string {
  return JSON.stringify(props);
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isGuid(value: string): boolean {
  return GUID_RE.test(value);
}

/**
 * The emulator's whole directory: tenants, their users and change logs, app
 * registrations and their service principals. Every user mutation goes through
 * this class so the change log (and therefore delta) can never miss one.
 */
export class Directory {
  readonly tenants = new Map<string, Tenant>();
  readonly tenantsByDomain = new Map<string, Tenant>();
  readonly apps = new Map<string, AppRegistration>();
  readonly clock: Clock;
  /** Seconds between admin consent and tokens carrying it (AADSTS65001 meanwhile). */
  consentPropagationSeconds = 0;
  /**
   * App-only tokens issued at or before these times (epoch seconds, by `tenantId appId`) are refused by
   * Graph, as continuous access evaluation refuses them once a service principal is deleted. Not saved:
   * the tokens it covers expire within the hour anyway.
   */
  readonly appTokensRevokedAt = new Map<string, number>();
  /** When each tenant's present consent to an app was granted (seconds; none after a revocation), so tokens of a new consent outlive an earlier revocation. */
  readonly #consentGrantedAt = new Map<string, number>();
  /** Which error a tenant without the app's service principal answers with. */
  missingServicePrincipalError: 700016 | 7000229 = 700016;
  /** Told of every logged change (change notifications); bulk seeding is not announced. */
  readonly changeListeners: DirectoryChangeListener[] = [];

  constructor(clock: Clock) {
    this.clock = clock;
  }

  // ---- tenants -------------------------------------------------------------

  addTenant(input: TenantInput): Tenant {
    const id = (input.id ?? randomUUID()).toLowerCase();
    if (!isGuid(id)) throw new DirectoryError(400, `tenant id must be a GUID: ${id}`);
    if (this.tenants.has(id)) throw new DirectoryError(409, `tenant ${id} already exists`);
    const domains = input.domains.map((d) => d.toLowerCase());
    if (domains.length === 0) throw new DirectoryError(400, 'a tenant needs at least one domain');
    for (const domain of domains) {
      if (this.tenantsByDomain.has(domain)) throw new DirectoryError(409, `domain ${domain} belongs to another tenant`);
    }
    const tenant: Tenant = {
      id,
      displayName: input.displayName,
      domains,
      defaultDomain: domains[domains.length - 1]!,
      countryLetterCode: input.countryLetterCode ?? 'US',
      createdDateTime: input.createdDateTime ?? this.clock.nowIso(),
      users: [],
      usersById: new Map(),
      deletedUsers: new Map(),
      purgedUserIds: new Set(),
      nextOrdinal: 0,
      changeLog: [],
      seq: 0,
      deltaFloor: 0,
      servicePrincipals: new Map(),
      ...emptyGroups(),
    };
    this.tenants.set(id, tenant);
    for (const domain of domains) this.tenantsByDomain.set(domain, tenant);
    return tenant;
  }

  editTenant(tenantRef: string, patch: { displayName?: string; countryLetterCode?: string; addDomains?: string[] }): Tenant {
    const tenant = this.requireTenant(tenantRef);
    if (patch.displayName !== undefined) tenant.displayName = patch.displayName;
    if (patch.countryLetterCode !== undefined) tenant.countryLetterCode = patch.countryLetterCode;
    for (const raw of patch.addDomains ?? []) {
      const domain = raw.toLowerCase();
      const owner = this.tenantsByDomain.get(domain);
      if (owner && owner !== tenant) throw new DirectoryError(409, `domain ${domain} belongs to another tenant`);
      if (!owner) {
        tenant.domains.push(domain);
        this.tenantsByDomain.set(domain, tenant);
      }
    }
    return tenant;
  }

  removeTenant(tenantRef: string): void {
    const tenant = this.requireTenant(tenantRef);
    this.tenants.delete(tenant.id);
    for (const domain of tenant.domains) this.tenantsByDomain.delete(domain);
  }

  /** Finds a tenant by GUID or verified domain. */
  findTenant(ref: string): Tenant | undefined {
    const key = ref.toLowerCase();
    return this.tenants.get(key) ?? this.tenantsByDomain.get(key);
  }

  requireTenant(ref: string): Tenant {
    const tenant = this.findTenant(ref);
    if (!tenant) throw new DirectoryError(404, `no tenant ${ref}`);
    return tenant;
  }

  // ---- users ---------------------------------------------------------------

  /** Finds an active user by id or UPN across all tenants (sign-in page). */
  findUserByUpn(upn: string): { tenant: Tenant; user: UserRecord } | undefined {
    const lower = upn.toLowerCase();
    const domain = lower.slice(lower.lastIndexOf('@') + 1);
    const tenant = this.tenantsByDomain.get(domain);
    if (!tenant) return undefined;
    for (const user of tenant.users) {
      if (user.props.userPrincipalName.toLowerCase() === lower) return { tenant, user };
    }
    return undefined;
  }

  requireUser(tenant: Tenant, ref: string): UserRecord {
    const user = tenant.usersById.get(ref) ?? tenant.users.find((u) => u.props.userPrincipalName.toLowerCase() === ref.toLowerCase());
    if (!user) throw new DirectoryError(404, `no user ${ref} in tenant ${tenant.id}`);
    return user;
  }

  addUser(tenant: Tenant, input: UserInput): UserRecord {
    const record = this.buildUser(tenant, input);
    record.fullJson = fullUserJson(record.props);
    tenant.users.push(record);
    tenant.usersById.set(record.props.id, record);
    this.logChange(tenant, record.props.id);
    return record;
  }

  /**
   * Bulk insert for seeding: same result as `addUser` in a loop, without the
   * per-user checks that make a million-user tenant slow to build.
   */
  addUsersUnchecked(tenant: Tenant, inputs: Iterable<UserInput>): void {
    for (const input of inputs) {
      const record = this.buildUser(tenant, input, false);
      record.fullJson = fullUserJson(record.props);
      tenant.users.push(record);
      tenant.usersById.set(record.props.id, record);
      tenant.seq += 1;
      tenant.changeLog.push({ seq: tenant.seq, userId: record.props.id });
    }
  }

  editUser(tenant: Tenant, ref: string, patch: UserInput): UserRecord {
    const user = this.requireUser(tenant, ref);
    const changed: GraphUserProperty[] = [];
    for (const key of GRAPH_USER_PROPERTIES) {
      if (key === 'id' || key === 'createdDateTime') continue;
      if (!(key in patch)) continue;
      const value = patch[key];
      if (value === undefined) continue;
      if (JSON.stringify(user.props[key]) === JSON.stringify(value)) continue;
      (user.props as unknown as Record<string, unknown>)[key] = value;
      changed.push(key);
    }
    if (patch.password !== undefined) user.password = patch.password;
    if (patch.admin !== undefined) user.admin = patch.admin;
    if (changed.length > 0) {
      delete user.cachedJson;
      delete user.cachedSelectJson;
      user.fullJson = fullUserJson(user.props);
      this.logChange(tenant, user.props.id, changed);
    }
    return user;
  }

  /** Moves a user to deleted items: delta reports `@removed: changed`. */
  softDeleteUser(tenant: Tenant, ref: string): UserRecord {
    const user = this.requireUser(tenant, ref);
    this.detach(tenant, user);
    tenant.deletedUsers.set(user.props.id, user);
    this.logChange(tenant, user.props.id);
    return user;
  }

  restoreUser(tenant: Tenant, id: string): UserRecord {
    const user = tenant.deletedUsers.get(id);
    if (!user) throw new DirectoryError(404, `no deleted user ${id} in tenant ${tenant.id}`);
    tenant.deletedUsers.delete(id);
    tenant.users.splice(this.insertionIndex(tenant, user.ordinal), 0, user);
    tenant.usersById.set(id, user);
    this.logChange(tenant, id);
    return user;
  }

  /** Deletes a user for good (from active users or deleted items): delta reports `@removed: deleted`. */
  purgeUser(tenant: Tenant, ref: string): void {
    const deleted = tenant.deletedUsers.get(ref);
    if (deleted) {
      tenant.deletedUsers.delete(ref);
      tenant.purgedUserIds.add(ref);
      this.logChange(tenant, ref, undefined, 'deleted');
      this.dropMemberships(tenant, ref);
      return;
    }
    const user = this.requireUser(tenant, ref);
    this.detach(tenant, user);
    tenant.purgedUserIds.add(user.props.id);
    this.logChange(tenant, user.props.id, undefined, 'deleted');
    // Soft-deleted users keep their memberships; only a permanent deletion takes them out of groups.
    this.dropMemberships(tenant, user.props.id);
  }

  /** Index of the first active user whose ordinal is greater than `afterOrdinal` (paging cursor). */
  indexAfterOrdinal(tenant: Tenant, afterOrdinal: number): number {
    return this.insertionIndex(tenant, afterOrdinal + 1);
  }

  // ---- groups --------------------------------------------------------------

  /** An active group by id or mailNickname. */
  requireGroup(tenant: Tenant, ref: string): GroupRecord {
    const lower = ref.toLowerCase();
    const group = tenant.groupsById.get(lower) ?? tenant.groups.find((g) => g.props.mailNickname.toLowerCase() === lower);
    if (!group) throw new DirectoryError(404, `no group ${ref} in tenant ${tenant.id}`);
    return group;
  }

  /** A soft-deleted group by id or mailNickname. */
  findDeletedGroup(tenant: Tenant, ref: string): GroupRecord | undefined {
    const lower = ref.toLowerCase();
    const byId = tenant.deletedGroups.get(lower);
    if (byId) return byId;
    for (const group of tenant.deletedGroups.values()) if (group.props.mailNickname.toLowerCase() === lower) return group;
    return undefined;
  }

  /** Creates a group (security, Microsoft 365, distribution or dynamic) with optional direct members. */
  addGroup(tenant: Tenant, input: GroupInput): GroupRecord {
    const id = (input.id ?? randomUUID()).toLowerCase();
    if (!isGuid(id)) throw new DirectoryError(400, `group id must be a GUID: ${id}`);
    if (this.groupIdTaken(tenant, id)) throw new DirectoryError(409, `object ${id} already exists in tenant ${tenant.id}`);
    const props = groupProps(tenant, id, input, this.clock.nowIso());
    this.checkNicknameFree(tenant, props.mailNickname, id);
    const members = [...new Set((input.members ?? []).map((m) => m.toLowerCase()))];
    const group: GroupRecord = { props, members: [], ordinal: tenant.nextGroupOrdinal++ };
    for (const member of members) this.checkMember(tenant, group, member);
    group.members = members;
    for (const member of members) indexMembership(tenant, member, id);
    tenant.groups.push(group);
    tenant.groupsById.set(id, group);
    this.logGroupChange(tenant, { groupId: id });
    return group;
  }

  /**
   * Bulk insert for seeding: groups whose ids and members the caller vouches for
   * (generated or validated), without the per-member checks.
   */
  addGroupsUnchecked(tenant: Tenant, inputs: Iterable<GroupInput & { id: string; members: string[] }>): void {
    for (const input of inputs) {
      if (this.groupIdTaken(tenant, input.id)) throw new DirectoryError(409, `object ${input.id} already exists in tenant ${tenant.id}`);
      const group: GroupRecord = { props: groupProps(tenant, input.id, input, this.clock.nowIso()), members: input.members, ordinal: tenant.nextGroupOrdinal++ };
      for (const member of group.members) indexMembership(tenant, member, input.id);
      tenant.groups.push(group);
      tenant.groupsById.set(input.id, group);
      tenant.seq += 1;
      tenant.groupChangeLog.push({ seq: tenant.seq, groupId: input.id });
    }
  }

  editGroup(tenant: Tenant, ref: string, patch: GroupPatch): GroupRecord {
    const group = this.requireGroup(tenant, ref);
    const next: GraphGroup = { ...group.props };
    const changed: (keyof GroupPatch)[] = [];
    for (const key of ['displayName', 'description', 'groupTypes', 'securityEnabled', 'mailEnabled', 'mail', 'mailNickname', 'membershipRule'] as const) {
      const value = patch[key];
      if (value === undefined || JSON.stringify(next[key]) === JSON.stringify(value)) continue;
      (next as unknown as Record<string, unknown>)[key] = key === 'groupTypes' ? [...new Set(value as string[])] : value;
      changed.push(key);
    }
    if (changed.length === 0) return group;
    // Turning mail on gives the group the address Entra would.
    if (next.mailEnabled && !next.mail && patch.mail === undefined) {
      next.mail = `${next.mailNickname}@${tenant.defaultDomain}`;
      changed.push('mail');
    }
    if (isUnified(next) !== isUnified(group.props)) throw new DirectoryError(400, `group ${group.props.displayName}: a group cannot become or stop being a Microsoft 365 group`);
    checkGroupShape(next);
    if (changed.includes('mailNickname')) this.checkNicknameFree(tenant, next.mailNickname, group.props.id);
    group.props = next;
    this.logGroupChange(tenant, { groupId: group.props.id, changed });
    return group;
  }

  /** Microsoft 365 groups go to deleted items (restorable, `@removed: changed`); others are deleted at once (`deleted`). */
  deleteGroup(tenant: Tenant, ref: string): { id: string; deleted: 'soft' | 'permanent' } {
    const group = this.requireGroup(tenant, ref);
    if (!isUnified(group.props)) {
      this.purgeGroup(tenant, group.props.id);
      return { id: group.props.id, deleted: 'permanent' };
    }
    this.detachGroup(tenant, group);
    group.deletedAtMs = this.clock.nowMs();
    tenant.deletedGroups.set(group.props.id, group);
    this.logGroupChange(tenant, { groupId: group.props.id });
    return { id: group.props.id, deleted: 'soft' };
  }

  /** Brings a soft-deleted Microsoft 365 group back, with the members it had. */
  restoreGroup(tenant: Tenant, id: string): GroupRecord {
    const group = this.findDeletedGroup(tenant, id);
    if (!group) throw new DirectoryError(404, `no deleted group ${id} in tenant ${tenant.id}`);
    this.checkNicknameFree(tenant, group.props.mailNickname, group.props.id);
    tenant.deletedGroups.delete(group.props.id);
    delete group.deletedAtMs;
    tenant.groups.splice(groupInsertionIndex(tenant, group.ordinal), 0, group);
    tenant.groupsById.set(group.props.id, group);
    this.logGroupChange(tenant, { groupId: group.props.id });
    return group;
  }

  /** Deletes a group for good (active or from deleted items): its memberships, both ways, go with it. */
  purgeGroup(tenant: Tenant, ref: string): void {
    const group = this.findDeletedGroup(tenant, ref) ?? this.requireGroup(tenant, ref);
    const id = group.props.id;
    if (tenant.deletedGroups.delete(id)) {
      // already out of the listing
    } else {
      this.detachGroup(tenant, group);
    }
    tenant.purgedGroupIds.add(id);
    for (const member of group.members) unindexMembership(tenant, member, id);
    this.logGroupChange(tenant, { groupId: id }, 'deleted');
    this.dropMemberships(tenant, id);
  }

  /** Adds a direct member (a user or a group, by id or UPN/mailNickname) to a group. */
  addGroupMember(tenant: Tenant, groupRef: string, memberRef: string): void {
    const group = this.requireGroup(tenant, groupRef);
    const memberId = this.resolveMemberId(tenant, memberRef);
    if (tenant.memberOf.get(memberId)?.includes(group.props.id)) throw new DirectoryError(409, `${memberRef} is already a member of group ${group.props.displayName}`);
    this.checkMember(tenant, group, memberId);
    group.members.push(memberId);
    indexMembership(tenant, memberId, group.props.id);
    this.logGroupChange(tenant, { groupId: group.props.id, member: memberId });
  }

  removeGroupMember(tenant: Tenant, groupRef: string, memberRef: string): void {
    const group = this.requireGroup(tenant, groupRef);
    const memberId = this.resolveMemberId(tenant, memberRef, true);
    const index = group.members.indexOf(memberId);
    if (index === -1) throw new DirectoryError(404, `${memberRef} is not a member of group ${group.props.displayName}`);
    group.members.splice(index, 1);
    unindexMembership(tenant, memberId, group.props.id);
    this.logGroupChange(tenant, { groupId: group.props.id, member: memberId });
  }

  /** Ids of every user in a group, directly or through nested groups at any depth; cycles end the walk. */
  transitiveMemberIds(tenant: Tenant, groupId: string): string[] {
    return transitiveMembers(tenant, this.requireGroup(tenant, groupId).props.id).users;
  }

  // ---- apps and consent ----------------------------------------------------

  addApp(app: AppRegistration): AppRegistration {
    if (this.apps.has(app.appId)) throw new DirectoryError(409, `app ${app.appId} already exists`);
    this.apps.set(app.appId, app);
    return app;
  }

  requireApp(appId: string): AppRegistration {
    const app = this.apps.get(appId);
    if (!app) throw new DirectoryError(404, `no app registration ${appId}`);
    return app;
  }

  /** Admin consent: creates (or updates) the app's service principal with its app roles. */
  grantAdminConsent(tenant: Tenant, app: AppRegistration): ServicePrincipal {
    const existing = tenant.servicePrincipals.get(app.appId);
    if (existing) {
      existing.appRoles = [...new Set([...existing.appRoles, ...app.requiredAppRoles])];
      return existing;
    }
    return this.createServicePrincipal(tenant, app, [...app.requiredAppRoles]);
  }

  /**
   * Sets exactly which application permissions a tenant's consent granted (creating the service
   * principal if needed), e.g. a consent given before the app asked for a group permission.
   */
  setConsentedAppRoles(tenant: Tenant, app: AppRegistration, appRoles: string[]): ServicePrincipal {
    const sp = tenant.servicePrincipals.get(app.appId) ?? this.createServicePrincipal(tenant, app, []);
    sp.appRoles = [...new Set(appRoles)];
    return sp;
  }

  /** User or admin consent to delegated permissions only: a service principal without app roles. */
  ensureServicePrincipal(tenant: Tenant, app: AppRegistration): ServicePrincipal {
    return tenant.servicePrincipals.get(app.appId) ?? this.createServicePrincipal(tenant, app, []);
  }

  /** Deleting the enterprise app in the customer tenant, which is how consent is revoked. */
  revokeConsent(tenant: Tenant, appId: string, options: { revokeTokens?: boolean } = {}): void {
    if (!tenant.servicePrincipals.delete(appId)) {
      throw new DirectoryError(404, `app ${appId} has no service principal in tenant ${tenant.id}`);
    }
    this.#consentGrantedAt.delete(`${tenant.id} ${appId}`);
    if (options.revokeTokens) this.appTokensRevokedAt.set(`${tenant.id} ${appId}`, this.clock.nowSeconds());
  }

  /** Whether Graph must refuse this app-only token because its consent was revoked with its tokens. */
  appTokenRevoked(tenantId: string, appId: string, issuedAt: number): boolean {
    const key = `${tenantId} ${appId}`;
    const revokedAt = this.appTokensRevokedAt.get(key);
    if (revokedAt === undefined || issuedAt > revokedAt) return false;
    // Token times are whole seconds: a token of a consent granted again within the revocation's second is the new consent's.
    const grantedAgainAt = this.#consentGrantedAt.get(key);
    return !(grantedAgainAt !== undefined && grantedAgainAt >= revokedAt && issuedAt >= grantedAgainAt);
  }

  // ---- internals -----------------------------------------------------------

  private groupIdTaken(tenant: Tenant, id: string): boolean {
    return tenant.groupsById.has(id) || tenant.deletedGroups.has(id) || tenant.purgedGroupIds.has(id) || tenant.usersById.has(id) || tenant.deletedUsers.has(id);
  }

  /** Nicknames name groups in the control API and CLI, so they stay unique in a tenant (Entra requires it of mail-enabled groups). */
  private checkNicknameFree(tenant: Tenant, nickname: string, ownId: string): void {
    const lower = nickname.toLowerCase();
    const clash = (g: GroupRecord) => g.props.id !== ownId && g.props.mailNickname.toLowerCase() === lower;
    if (tenant.groups.some(clash) || [...tenant.deletedGroups.values()].some(clash)) throw new DirectoryError(409, `mailNickname ${nickname} is taken`);
  }

  /** A user (id or UPN) or group (id or mailNickname) of the tenant; removals also accept ids of soft-deleted users. */
  private resolveMemberId(tenant: Tenant, ref: string, forRemoval = false): string {
    const lower = ref.toLowerCase();
    if (tenant.usersById.has(lower) || tenant.groupsById.has(lower)) return lower;
    if (forRemoval && (tenant.deletedUsers.has(lower) || tenant.memberOf.has(lower))) return lower;
    if (ref.includes('@')) return this.requireUser(tenant, ref).props.id;
    const group = tenant.groups.find((g) => g.props.mailNickname.toLowerCase() === lower);
    if (group) return group.props.id;
    throw new DirectoryError(404, `no user or group ${ref} in tenant ${tenant.id}`);
  }

  /** What Entra refuses as a member: strangers, the group itself, and nesting with Microsoft 365 groups. */
  private checkMember(tenant: Tenant, group: GroupRecord, memberId: string): void {
    if (memberId === group.props.id) throw new DirectoryError(400, `group ${group.props.displayName} cannot be a member of itself`);
    const nested = tenant.groupsById.get(memberId);
    if (nested) {
      if (isUnified(group.props)) throw new DirectoryError(400, `group ${group.props.displayName} is a Microsoft 365 group: its members are users only`);
      if (isUnified(nested.props)) throw new DirectoryError(400, `group ${nested.props.displayName} is a Microsoft 365 group and cannot be nested in another group`);
      return;
    }
    if (!tenant.usersById.has(memberId)) throw new DirectoryError(404, `no user or group ${memberId} in tenant ${tenant.id}`);
  }

  /** Takes a permanently deleted user or group out of every group that held it; each such group logs the removal. */
  private dropMemberships(tenant: Tenant, memberId: string): void {
    const groupIds = tenant.memberOf.get(memberId);
    if (!groupIds) return;
    tenant.memberOf.delete(memberId);
    for (const groupId of groupIds) {
      const group = tenant.groupsById.get(groupId) ?? tenant.deletedGroups.get(groupId);
      if (!group) continue;
      const index = group.members.indexOf(memberId);
      if (index !== -1) group.members.splice(index, 1);
      this.logGroupChange(tenant, { groupId, member: memberId });
    }
  }

  private detachGroup(tenant: Tenant, group: GroupRecord): void {
    const index = groupInsertionIndex(tenant, group.ordinal);
    if (tenant.groups[index] !== group) throw new Error(`listing order broken for group ${group.props.id}`);
    tenant.groups.splice(index, 1);
    tenant.groupsById.delete(group.props.id);
  }

  /** Like `logChange`: a membership change is an `updated` of its group, and only a purge is `deleted`. */
  private logGroupChange(tenant: Tenant, entry: Omit<GroupChangeEntry, 'seq'>, kind: ChangeKind = 'updated'): void {
    tenant.seq += 1;
    tenant.groupChangeLog.push({ seq: tenant.seq, ...entry });
    for (const listener of this.changeListeners) listener({ tenant, resource: 'groups', id: entry.groupId, kind });
  }

  private createServicePrincipal(tenant: Tenant, app: AppRegistration, appRoles: string[]): ServicePrincipal {
    const sp: ServicePrincipal = {
      id: randomUUID(),
      appId: app.appId,
      appRoles,
      readyAtMs: this.clock.nowMs() + this.consentPropagationSeconds * 1000,
      createdDateTime: this.clock.nowIso(),
    };
    tenant.servicePrincipals.set(app.appId, sp);
    this.#consentGrantedAt.set(`${tenant.id} ${app.appId}`, this.clock.nowSeconds());
    return sp;
  }

  private buildUser(tenant: Tenant, input: UserInput, check = true): UserRecord {
    const id = (input.id ?? randomUUID()).toLowerCase();
    const upn = input.userPrincipalName ?? `${id.slice(0, 8)}@${tenant.defaultDomain}`;
    if (check) {
      if (!isGuid(id)) throw new DirectoryError(400, `user id must be a GUID: ${id}`);
      if (tenant.usersById.has(id) || tenant.deletedUsers.has(id) || tenant.purgedUserIds.has(id)) {
        throw new DirectoryError(409, `user ${id} already exists in tenant ${tenant.id}`);
      }
      const upnDomain = upn.slice(upn.lastIndexOf('@') + 1).toLowerCase();
      if (!upn.includes('@') || !tenant.domains.includes(upnDomain)) {
        throw new DirectoryError(400, `userPrincipalName ${upn} must end with a verified domain of the tenant (${tenant.domains.join(', ')})`);
      }
      const lower = upn.toLowerCase();
      if (tenant.users.some((u) => u.props.userPrincipalName.toLowerCase() === lower)) {
        throw new DirectoryError(409, `userPrincipalName ${upn} is taken`);
      }
    }
    const displayName = input.displayName ?? upn.slice(0, upn.indexOf('@'));
    return {
      props: {
        id,
        displayName,
        givenName: input.givenName ?? null,
        surname: input.surname ?? null,
        mail: input.mail === undefined ? upn : input.mail,
        userPrincipalName: upn,
        jobTitle: input.jobTitle ?? null,
        department: input.department ?? null,
        officeLocation: input.officeLocation ?? null,
        accountEnabled: input.accountEnabled ?? true,
        userType: input.userType ?? 'Member',
        createdDateTime: input.createdDateTime ?? this.clock.nowIso(),
        employeeId: input.employeeId ?? null,
        companyName: input.companyName ?? null,
        mobilePhone: input.mobilePhone ?? null,
        businessPhones: input.businessPhones ?? [],
      },
      password: input.password ?? 'roster-demo',
      admin: input.admin ?? false,
      ordinal: tenant.nextOrdinal++,
    };
  }

  private detach(tenant: Tenant, user: UserRecord): void {
    const index = this.insertionIndex(tenant, user.ordinal);
    if (tenant.users[index] !== user) throw new Error(`listing order broken for user ${user.props.id}`);
    tenant.users.splice(index, 1);
    tenant.usersById.delete(user.props.id);
  }

  /** First index of the tenant's active users whose ordinal is >= `ordinal`. */
  private insertionIndex(tenant: Tenant, ordinal: number): number {
    return ordinalIndex(tenant.users, ordinal);
  }

  /** `deleted` only for a permanent deletion: creation, edits, soft deletion and restores are all `updated`, as Graph reports them. */
  private logChange(tenant: Tenant, userId: string, changed?: GraphUserProperty[], kind: ChangeKind = 'updated'): void {
    tenant.seq += 1;
    const entry: ChangeEntry = { seq: tenant.seq, userId };
    if (changed) entry.changed = changed;
    tenant.changeLog.push(entry);
    for (const listener of this.changeListeners) listener({ tenant, resource: 'users', id: userId, kind });
  }
}

/** A tenant's group fields, empty: for new tenants and for state saved before groups existed. */
export function emptyGroups(): Pick<Tenant, 'groups' | 'groupsById' | 'deletedGroups' | 'purgedGroupIds' | 'nextGroupOrdinal' | 'groupChangeLog' | 'memberOf'> {
  return { groups: [], groupsById: new Map(), deletedGroups: new Map(), purgedGroupIds: new Set(), nextGroupOrdinal: 0, groupChangeLog: [], memberOf: new Map() };
}

export function indexMembership(tenant: Tenant, memberId: string, groupId: string): void {
  const groups = tenant.memberOf.get(memberId);
  if (!groups) tenant.memberOf.set(memberId, [groupId]);
  else if (!groups.includes(groupId)) groups.push(groupId);
}

function unindexMembership(tenant: Tenant, memberId: string, groupId: string): void {
  const groups = tenant.memberOf.get(memberId);
  const index = groups ? groups.indexOf(groupId) : -1;
  if (index === -1) return;
  groups!.splice(index, 1);
  if (groups!.length === 0) tenant.memberOf.delete(memberId);
}

/** First index of the tenant's active groups whose ordinal is >= `ordinal`. */
export function groupInsertionIndex(tenant: Tenant, ordinal: number): number {
  return ordinalIndex(tenant.groups, ordinal);
}

/** Binary search over a list in ascending `ordinal` order: first index whose ordinal is >= `ordinal`. */
function ordinalIndex(list: readonly { ordinal: number }[], ordinal: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.ordinal < ordinal) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
