import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Fault, FaultSpec, RequestLogEntry } from './faults.ts';
import type { GraphGroup } from './groups.ts';
import type { ChangeEntry, GraphUser, GroupMembershipClaims, UserInput } from './model.ts';

/** Written by `roster emulator` into its data folder so other commands can find it. */
export const CONTROL_FILE = 'control.json';

export interface ControlFile {
  url: string;
  token: string;
  pid: number;
}

/** A non-2xx answer of the control API (or no answer at all: status 0). */
export class ControlError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface TenantSummary {
  id: string;
  displayName: string;
  domains: string[];
  defaultDomain: string;
  countryLetterCode: string;
  userCount: number;
  deletedCount: number;
  purgedCount: number;
  groupCount: number;
  deletedGroupCount: number;
  seq: number;
  deltaFloor: number;
  admin: string | null;
  consentedApps: { appId: string; servicePrincipalId: string; appRoles: string[]; ready: boolean }[];
}

export interface AppSummary {
  appId: string;
  displayName: string;
  signInAudience: string;
  homeTenantId: string | null;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  requiredAppRoles: string[];
  disabled: boolean;
  groupMembershipClaims: GroupMembershipClaims;
  secrets: { id: string; expiresAt: string }[];
  certificates: { id: string; x5t: string; x5tS256: string; expiresAt: string }[];
}

export interface Settings {
  consentPropagationSeconds: number;
  missingServicePrincipalError: 700016 | 7000229;
  clockOffsetSeconds: number;
  now: string;
}

export interface EmulatorState {
  demoAppId: string;
  tenants: TenantSummary[];
  apps: AppSummary[];
  settings: Settings;
  signingKeys: { current: string; kids: string[] };
  urls: { authority: string; graph: string; pages: string; control: string };
}

export type ControlUser = GraphUser & { admin: boolean };

/** A group as the control API shows it: Graph's properties, its kind, and its direct member ids. */
export type ControlGroup = GraphGroup & { kind: 'security' | 'microsoft365' | 'distribution' | 'dynamic'; memberCount: number; members?: string[] };

/** What `group add` takes: Graph's properties, or a `kind` that sets them, and members by id, UPN or nickname. */
export type NewGroup = Partial<Omit<GraphGroup, 'createdDateTime'>> & { displayName: string; kind?: ControlGroup['kind']; members?: string[] };
export type GroupEdit = Partial<Pick<GraphGroup, 'displayName' | 'description' | 'groupTypes' | 'securityEnabled' | 'mailEnabled' | 'mail' | 'mailNickname' | 'membershipRule'>>;

export interface NewTenant {
  displayName: string;
  domains?: string[];
  id?: string;
  countryLetterCode?: string;
  generateUsers?: number;
  /** Groups generated over the tenant's users (nested, varied sizes). */
  generateGroups?: number;
  seed?: number;
  password?: string;
  consent?: boolean;
}

export interface NewApp {
  appId?: string;
  displayName: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  signInAudience?: 'AzureADMyOrg' | 'AzureADMultipleOrgs';
  requiredAppRoles?: string[];
  homeTenant?: string;
  withSecret?: boolean;
  /** `None` unless given; `DirectoryRole`, `All` or `SecurityGroup` put `wids` in ID tokens. */
  groupMembershipClaims?: GroupMembershipClaims;
}

/** A subscription as the control API lists it: Graph's resource plus its tenant and delivery figures. */
export interface ControlSubscription {
  id: string;
  tenantId: string;
  resource: string;
  applicationId: string;
  changeType: string;
  notificationUrl: string;
  lifecycleNotificationUrl: string | null;
  expirationDateTime: string;
  expired: boolean;
  reauthorizationRequired: boolean;
  stats: { delivered: number; failedAttempts: number; dropped: number; retried: number };
}

export type FaultInput = Omit<FaultSpec, 'retryAfter'> & { retryAfter?: string | number };

const seg = encodeURIComponent;

/**
 * Typed client of the emulator's control API (plain http on localhost).
 * Tenants are referenced by GUID or domain, users by id or UPN, apps by id or `demo`.
 */
export class ControlClient {
  readonly url: string;
  readonly #token: string;

  constructor(url: string, token: string) {
    this.url = url.replace(/\/+$/, '');
    this.#token = token;
  }

  /** The client of the emulator running with this data folder (from its `control.json`). */
  static async fromDataDir(dataDir: string): Promise<ControlClient> {
    const path = join(dataDir, CONTROL_FILE);
    let file: ControlFile;
    try {
      file = JSON.parse(await readFile(path, 'utf8')) as ControlFile;
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no emulator is running with this data folder' : (err as Error).message;
      throw new ControlError(0, `cannot read ${path}: ${reason}`);
    }
    return new ControlClient(file.url, file.token);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new ControlError(0, `no emulator answering at ${this.url} (${cause})`);
    }
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const message = (json as { error?: { message?: string } } | undefined)?.error?.message ?? text;
      throw new ControlError(res.status, `${method} ${path}: ${res.status} ${message}`);
    }
    return json as T;
  }

  state(): Promise<EmulatorState> {
    return this.request('GET', '/state');
  }

  // tenants
  addTenant(input: NewTenant): Promise<TenantSummary> {
    return this.request('POST', '/tenants', input);
  }
  getTenant(tenant: string): Promise<TenantSummary> {
    return this.request('GET', `/tenants/${seg(tenant)}`);
  }
  editTenant(tenant: string, patch: { displayName?: string; countryLetterCode?: string; addDomains?: string[] }): Promise<TenantSummary> {
    return this.request('PATCH', `/tenants/${seg(tenant)}`, patch);
  }
  removeTenant(tenant: string): Promise<{ removed: string }> {
    return this.request('DELETE', `/tenants/${seg(tenant)}`);
  }

  // users
  addUser(tenant: string, user: UserInput): Promise<ControlUser> {
    return this.request('POST', `/tenants/${seg(tenant)}/users`, user);
  }
  getUser(tenant: string, user: string): Promise<ControlUser & { deleted: boolean }> {
    return this.request('GET', `/tenants/${seg(tenant)}/users/${seg(user)}`);
  }
  editUser(tenant: string, user: string, patch: Omit<UserInput, 'id' | 'createdDateTime'>): Promise<ControlUser> {
    return this.request('PATCH', `/tenants/${seg(tenant)}/users/${seg(user)}`, patch);
  }
  deleteUser(tenant: string, user: string): Promise<{ id: string; deleted: 'soft' }> {
    return this.request('DELETE', `/tenants/${seg(tenant)}/users/${seg(user)}`);
  }
  purgeUser(tenant: string, user: string): Promise<{ id: string; deleted: 'permanent' }> {
    return this.request('DELETE', `/tenants/${seg(tenant)}/users/${seg(user)}?permanent=true`);
  }
  restoreUser(tenant: string, user: string): Promise<ControlUser> {
    return this.request('POST', `/tenants/${seg(tenant)}/users/${seg(user)}/restore`);
  }
  /** Deletes a share (0..1 of all users) or a count of the tenant's users who are not administrators, chosen by `seed`. */
  deleteManyUsers(tenant: string, options: { share?: number; count?: number; permanent?: boolean; seed?: number }): Promise<{ tenant: string; deleted: 'soft' | 'permanent'; count: number; remaining: number; users: string[] }> {
    return this.request('POST', `/tenants/${seg(tenant)}/users/delete-many`, options);
  }

  /** The tenant's change log (what delta replays), after `sinceSeq`. */
  changes(tenant: string, sinceSeq = 0, limit = 1000): Promise<{ tenant: string; seq: number; deltaFloor: number; changes: ChangeEntry[] }> {
    return this.request('GET', `/tenants/${seg(tenant)}/changes?sinceSeq=${sinceSeq}&limit=${limit}`);
  }

  // groups (by id or mail nickname)
  addGroup(tenant: string, group: NewGroup): Promise<ControlGroup> {
    return this.request('POST', `/tenants/${seg(tenant)}/groups`, group);
  }
  listGroups(tenant: string): Promise<{ tenant: string; groups: (ControlGroup & { deleted: false })[]; deletedGroups: (ControlGroup & { deleted: true; deletedDateTime: string })[] }> {
    return this.request('GET', `/tenants/${seg(tenant)}/groups`);
  }
  getGroup(tenant: string, group: string): Promise<ControlGroup & { deleted: boolean }> {
    return this.request('GET', `/tenants/${seg(tenant)}/groups/${seg(group)}`);
  }
  editGroup(tenant: string, group: string, patch: GroupEdit): Promise<ControlGroup> {
    return this.request('PATCH', `/tenants/${seg(tenant)}/groups/${seg(group)}`, patch);
  }
  /** Microsoft 365 groups go to deleted items (`soft`); others are deleted at once (`permanent`). */
  deleteGroup(tenant: string, group: string): Promise<{ id: string; deleted: 'soft' | 'permanent' }> {
    return this.request('DELETE', `/tenants/${seg(tenant)}/groups/${seg(group)}`);
  }
  purgeGroup(tenant: string, group: string): Promise<{ id: string; deleted: 'permanent' }> {
    return this.request('DELETE', `/tenants/${seg(tenant)}/groups/${seg(group)}?permanent=true`);
  }
  restoreGroup(tenant: string, group: string): Promise<ControlGroup> {
    return this.request('POST', `/tenants/${seg(tenant)}/groups/${seg(group)}/restore`);
  }
  addGroupMember(tenant: string, group: string, member: string): Promise<ControlGroup> {
    return this.request('POST', `/tenants/${seg(tenant)}/groups/${seg(group)}/members`, { member });
  }
  removeGroupMember(tenant: string, group: string, member: string): Promise<ControlGroup> {
    return this.request('DELETE', `/tenants/${seg(tenant)}/groups/${seg(group)}/members/${seg(member)}`);
  }

  // consent
  /** Admin consent; with `appRoles`, the consent grants exactly those (e.g. without the group permission). */
  grantConsent(tenant: string, appId?: string, appRoles?: string[]): Promise<{ tenant: string; appId: string; servicePrincipalId: string; appRoles: string[]; readyAt: string }> {
    return this.request('POST', `/tenants/${seg(tenant)}/consent`, { ...(appId ? { appId } : {}), ...(appRoles ? { appRoles } : {}) });
  }
  /** `revokeTokens`: Graph also refuses the app's tokens already issued for the tenant (else they work until they expire). */
  revokeConsent(tenant: string, appId = 'demo', options: { revokeTokens?: boolean } = {}): Promise<{ tenant: string; revoked: string; tokensRevoked: boolean }> {
    return this.request('DELETE', `/tenants/${seg(tenant)}/consent/${seg(appId)}${options.revokeTokens ? '?revokeTokens=true' : ''}`);
  }

  // keys, delta
  rotateKeys(options: { dropPrevious?: boolean } = {}): Promise<{ kid: string; kids: string[]; saved: boolean }> {
    return this.request('POST', '/keys/rotate', options);
  }
  /** The next ID token the emulator mints is spoiled this way (see `ID_TOKEN_TAMPERS`). */
  tamperNextIdToken(kind: string): Promise<{ pending: string[] }> {
    return this.request('POST', '/id-tokens/tamper', { kind });
  }
  setDecoyKeys(enabled: boolean): Promise<{ decoys: boolean }> {
    return this.request('PUT', '/keys/decoys', { enabled });
  }
  expireDelta(tenant: string): Promise<{ tenant: string; deltaFloor: number }> {
    return this.request('POST', `/tenants/${seg(tenant)}/delta/expire`);
  }

  // apps
  addApp(app: NewApp): Promise<AppSummary & { clientSecret: string | null }> {
    return this.request('POST', '/apps', app);
  }
  getApp(appId = 'demo'): Promise<AppSummary> {
    return this.request('GET', `/apps/${seg(appId)}`);
  }
  disableApp(appId = 'demo'): Promise<AppSummary> {
    return this.request('POST', `/apps/${seg(appId)}/disable`);
  }
  enableApp(appId = 'demo'): Promise<AppSummary> {
    return this.request('POST', `/apps/${seg(appId)}/enable`);
  }
  addCertificate(appId: string, certPem: string): Promise<{ appId: string; id: string; x5t: string; x5tS256: string; expiresAt: string }> {
    return this.request('POST', `/apps/${seg(appId)}/certificates`, { certPem });
  }
  addSecret(appId: string, options: { expiresAt?: string; value?: string } = {}): Promise<{ appId: string; id: string; value: string; expiresAt: string }> {
    return this.request('POST', `/apps/${seg(appId)}/secrets`, options);
  }
  addRedirectUri(appId: string, uri: string, kind: 'redirect' | 'postLogout' = 'redirect'): Promise<AppSummary> {
    return this.request('POST', `/apps/${seg(appId)}/redirect-uris`, { uri, kind });
  }

  // faults and requests
  addFault(fault: FaultInput): Promise<Fault> {
    return this.request('POST', '/faults', fault);
  }
  listFaults(): Promise<{ faults: Fault[] }> {
    return this.request('GET', '/faults');
  }
  clearFaults(): Promise<{ removed: number }> {
    return this.request('DELETE', '/faults');
  }
  removeFault(id: string): Promise<{ removed: number }> {
    return this.request('DELETE', `/faults/${seg(id)}`);
  }
  requests(filter: { tenant?: string; route?: string; sinceMs?: number; limit?: number } = {}): Promise<{ count: number; entries: RequestLogEntry[] }> {
    const query = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined).map(([k, v]): [string, string] => [k, String(v)]));
    const qs = query.toString();
    return this.request('GET', `/requests${qs ? `?${qs}` : ''}`);
  }
  resetRequests(): Promise<{ reset: true }> {
    return this.request('DELETE', '/requests');
  }
  stats(): Promise<{ total: number; byRoute: Record<string, number> }> {
    return this.request('GET', '/stats');
  }

  // change-notification subscriptions
  subscriptions(tenant?: string): Promise<{ subscriptions: ControlSubscription[] }> {
    return this.request('GET', `/subscriptions${tenant ? `?tenant=${seg(tenant)}` : ''}`);
  }
  sendLifecycleEvent(id: string, event: 'reauthorizationRequired' = 'reauthorizationRequired'): Promise<{ id: string; event: string; delivered: boolean; status: number | null }> {
    return this.request('POST', `/subscriptions/${seg(id)}/lifecycle`, { event });
  }

  // time, settings, persistence
  advanceClock(seconds: number): Promise<{ offsetSeconds: number; now: string }> {
    return this.request('POST', '/clock', { advanceSeconds: seconds });
  }
  settings(): Promise<Settings> {
    return this.request('GET', '/settings');
  }
  updateSettings(settings: { consentPropagationSeconds?: number; missingServicePrincipalError?: 700016 | 7000229 }): Promise<Settings> {
    return this.request('PUT', '/settings', settings);
  }
  save(): Promise<{ saved: true; dataDir: string; ms: number }> {
    return this.request('POST', '/save');
  }
}
