import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { EmulatorContext } from '../../context.ts';
import { ControlInputError } from '../../errors.ts';
import { GROUP_MEMBERSHIP_CLAIMS, isGuid, type AppRegistration, type Tenant, type UserRecord } from '../../model.ts';
import { saveState } from '../../persistence.ts';
import { formatPath } from '../../seed.ts';
import { ID_TOKEN_TAMPERS } from '../../tamper.ts';


export function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value ?? {});
  if (!result.success) {
    throw new ControlInputError(result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; '));
  }
  return result.data;
}

const domain = z.string().regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i, 'must be a domain name like contoso.com');
const guid = z.string().refine(isGuid, 'must be a GUID');
const isoDate = z.iso.datetime({ offset: true });
const nullableString = z.string().nullable();

const userFields = {
  displayName: z.string().min(1),
  givenName: nullableString,
  surname: nullableString,
  mail: nullableString,
  userPrincipalName: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must look like name@domain'),
  jobTitle: nullableString,
  department: nullableString,
  officeLocation: nullableString,
  accountEnabled: z.boolean(),
  userType: z.enum(['Member', 'Guest']),
  employeeId: nullableString,
  companyName: nullableString,
  mobilePhone: nullableString,
  businessPhones: z.array(z.string()),
  password: z.string().min(1),
  admin: z.boolean(),
};
export const userPatchSchema = z.strictObject(userFields).partial();
export const userCreateSchema = z.strictObject({ ...userFields, id: guid, createdDateTime: isoDate }).partial();

export const tenantCreateSchema = z.strictObject({
  displayName: z.string().min(1),
  domains: z.array(domain).min(1).optional(),
  id: guid.optional(),
  countryLetterCode: z.string().regex(/^[A-Z]{2}$/, 'must be two capital letters').optional(),
  generateUsers: z.number().int().min(0).max(2_000_000).optional(),
  seed: z.number().int().optional(),
  password: z.string().min(1).optional(),
  consent: z.boolean().optional(),
});
export const tenantPatchSchema = z.strictObject({
  displayName: z.string().min(1).optional(),
  countryLetterCode: z.string().regex(/^[A-Z]{2}$/, 'must be two capital letters').optional(),
  addDomains: z.array(domain).optional(),
});
export const consentSchema = z.strictObject({ appId: z.string().optional(), appRoles: z.array(z.string().regex(/^[A-Za-z]+(\.[A-Za-z]+)+$/, 'must be a permission name like GroupMember.Read.All')).optional() });
export const rotateSchema = z.strictObject({ dropPrevious: z.boolean().optional() });
export const tamperSchema = z.strictObject({ kind: z.enum(ID_TOKEN_TAMPERS) });
export const appCreateSchema = z.strictObject({
  appId: guid.optional(),
  displayName: z.string().min(1),
  redirectUris: z.array(z.url()).default([]),
  postLogoutRedirectUris: z.array(z.url()).default([]),
  signInAudience: z.enum(['AzureADMyOrg', 'AzureADMultipleOrgs']).default('AzureADMultipleOrgs'),
  requiredAppRoles: z.array(z.string()).default(['User.Read.All']),
  homeTenant: z.string().optional(),
  withSecret: z.boolean().default(true),
  groupMembershipClaims: z.enum(GROUP_MEMBERSHIP_CLAIMS).default('None'),
});
export const certificateSchema = z.strictObject({ certPem: z.string().includes('BEGIN CERTIFICATE', { message: 'must be a PEM certificate' }) });
export const secretSchema = z.strictObject({ expiresAt: isoDate.optional(), value: z.string().min(16).optional() });
export const redirectUriSchema = z.strictObject({ uri: z.url(), kind: z.enum(['redirect', 'postLogout']).default('redirect') });
export const faultSchema = z
  .strictObject({
    target: z.enum(['graph', 'token', 'any']),
    kind: z.enum(['throttle', 'unavailable', 'delay', 'drop']),
    tenant: z.string().optional(),
    retryAfter: z.union([z.number().min(0).transform(String), z.string().min(1)]).optional(),
    delayMs: z.number().int().min(0).max(600_000).optional(),
    share: z.number().min(0).max(1).optional(),
    count: z.number().int().min(1).optional(),
  })
  .refine((f) => f.share === undefined || f.count === undefined, { message: 'give share or count, not both', path: ['count'] });
export const requestsQuerySchema = z.strictObject({
  tenant: z.string().optional(),
  route: z.string().optional(),
  sinceMs: z.coerce.number().optional(),
  limit: z.coerce.number().int().min(1).optional(),
});
export const clockSchema = z.strictObject({ advanceSeconds: z.number().finite() });
export const settingsSchema = z.strictObject({
  consentPropagationSeconds: z.number().min(0).optional(),
  missingServicePrincipalError: z.union([z.literal(700016), z.literal(7000229)]).optional(),
});

// ---- views ---------------------------------------------------------------------

export function tenantSummary(ctx: EmulatorContext, tenant: Tenant) {
  const admin = tenant.users.find((u) => u.admin);
  return {
    id: tenant.id,
    displayName: tenant.displayName,
    domains: tenant.domains,
    defaultDomain: tenant.defaultDomain,
    countryLetterCode: tenant.countryLetterCode,
    userCount: tenant.users.length,
    deletedCount: tenant.deletedUsers.size,
    purgedCount: tenant.purgedUserIds.size,
    seq: tenant.seq,
    deltaFloor: tenant.deltaFloor,
    admin: admin ? admin.props.userPrincipalName : null,
    consentedApps: [...tenant.servicePrincipals.values()].map((sp) => ({
      appId: sp.appId,
      servicePrincipalId: sp.id,
      appRoles: sp.appRoles,
      ready: sp.readyAtMs <= ctx.clock.nowMs(),
    })),
  };
}

export function appSummary(app: AppRegistration) {
  return {
    appId: app.appId,
    displayName: app.displayName,
    signInAudience: app.signInAudience,
    homeTenantId: app.homeTenantId,
    redirectUris: app.redirectUris,
    postLogoutRedirectUris: app.postLogoutRedirectUris,
    requiredAppRoles: app.requiredAppRoles,
    disabled: app.disabled,
    groupMembershipClaims: app.groupMembershipClaims,
    secrets: app.secrets.map((s) => ({ id: s.id, expiresAt: new Date(s.expiresAtMs).toISOString() })),
    certificates: app.certificates.map((c) => ({ id: c.id, x5t: c.x5t, x5tS256: c.x5tS256, expiresAt: new Date(c.expiresAtMs).toISOString() })),
  };
}

export function userView(user: UserRecord) {
  return { ...user.props, admin: user.admin };
}

export function settingsView(ctx: EmulatorContext) {
  return {
    consentPropagationSeconds: ctx.directory.consentPropagationSeconds,
    missingServicePrincipalError: ctx.directory.missingServicePrincipalError,
    clockOffsetSeconds: ctx.clock.offsetSeconds,
    now: ctx.clock.nowIso(),
  };
}

// ---- helpers -------------------------------------------------------------------

export function sameSecret(given: string, expected: string): boolean {
  // Hashing first gives equal lengths, so the comparison time says nothing about the token.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function resolveApp(ctx: EmulatorContext, ref: string): AppRegistration {
  return ctx.directory.requireApp(ref === 'demo' ? ctx.demoAppId : ref.toLowerCase());
}

export function findDeleted(tenant: Tenant, ref: string): UserRecord | undefined {
  const byId = tenant.deletedUsers.get(ref.toLowerCase());
  if (byId) return byId;
  const lower = ref.toLowerCase();
  for (const user of tenant.deletedUsers.values()) if (user.props.userPrincipalName.toLowerCase() === lower) return user;
  return undefined;
}

export type Params = Record<string, string>;

/** The running emulator's own save (state and signing keys); state alone when the context has none. */
export async function saveAll(ctx: EmulatorContext): Promise<void> {
  if (ctx.save) return ctx.save();
  if (ctx.dataDir) await saveState(ctx.dataDir, ctx.directory, ctx.grants);
}
