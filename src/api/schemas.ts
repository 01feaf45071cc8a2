import { Type, type Static } from 'typebox';
import type { DirectoryUser } from '../store/users.ts';
import type { TenantRecord } from '../store/tenants.ts';
import type { HeldDeletion } from '../tenants/operator-actions.ts';

/**
 * The API's schemas, written with TypeBox: each validates requests (or shapes
 * responses) and is the same definition `@fastify/swagger` turns into the
 * OpenAPI document, so the document cannot drift from what the API does.
 */

export const GUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const Guid = (description: string) => Type.String({ pattern: GUID_PATTERN, description });
const Time = (description: string) => Type.String({ format: 'date-time', description });
// `type: [..., 'null']` rather than anyOf: the response serialiser picks an anyOf branch by validating each value, a type list it writes directly.
const NullableTime = (description: string) => Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'date-time', description });
export const NullableText = Type.Unsafe<string | null>({ type: ['string', 'null'] });

export const TenantParams = Type.Object({ tenant_id: Guid('The tenant (directory) id.') });
export const TenantUserParams = Type.Object({ tenant_id: Guid('The tenant (directory) id.'), user_id: Guid('The user object id.') });

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'A URI naming the kind of problem (`urn:roster:problem:<code>`).' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable, machine-readable code.' }),
    field: Type.Optional(Type.String({ description: 'The request field at fault (400).' })),
  },
  { title: 'Problem', description: 'RFC 9457 problem details.' },
);

const PROBLEM_WORDS: Record<number, string> = {
  400: 'Invalid input; `field` names the field.',
  401: 'No valid API key.',
  403: 'The key lacks the scope.',
  404: 'Not found, or not visible to this key.',
  409: 'Not possible in the tenant\'s current state.',
  429: 'Rate limit exceeded; see `Retry-After`.',
};

/** Problem responses for a route's OpenAPI entry, served as application/problem+json. */
export function problems(...statuses: (keyof typeof PROBLEM_WORDS)[]) {
  return Object.fromEntries([401, 403, 429, ...statuses].map((status) => [status, { description: PROBLEM_WORDS[status], content: { 'application/problem+json': { schema: ProblemSchema } } }]));
}

export const TenantSchema = Type.Object(
  {
    id: Type.String(),
    display_name: Type.String(),
    domains: Type.Array(Type.String()),
    state: Type.Union([Type.Literal('pending'), Type.Literal('active'), Type.Literal('disconnected'), Type.Literal('suspended'), Type.Literal('offboarded')]),
    state_reason: NullableText,
    user_count: Type.Integer(),
    created_at: Time('When the tenant signed up.'),
    updated_at: Time('When the tenant record last changed.'),
  },
  { title: 'Tenant' },
);
export type ApiTenant = Static<typeof TenantSchema>;

export const UserSchema = Type.Object(
  {
    id: Type.String(),
    tenant_id: Type.String(),
    state: Type.Union([Type.Literal('active'), Type.Literal('disabled'), Type.Literal('deleted'), Type.Literal('guest')], { description: '`deleted`: soft-deleted in Entra (restorable).' }),
    display_name: NullableText,
    given_name: NullableText,
    surname: NullableText,
    mail: NullableText,
    user_principal_name: NullableText,
    job_title: NullableText,
    department: NullableText,
    office_location: NullableText,
    account_enabled: Type.Boolean(),
    user_type: NullableText,
    employee_id: NullableText,
    company_name: NullableText,
    mobile_phone: NullableText,
    business_phones: Type.Array(Type.String()),
    roster_role: Type.Union([Type.Literal('admin'), Type.Literal('member')]),
    deleted_at: NullableTime('When Entra reported the user soft-deleted.'),
    last_sign_in_at: NullableTime('The last sign-in to Roster.'),
    updated_at: Time('When Roster last changed this user.'),
  },
  { title: 'User' },
);
export type ApiUser = Static<typeof UserSchema>;

export const EventSchema = Type.Object(
  {
    id: Type.String({ description: '`evt_...`; also the `webhook-id` of its webhook deliveries.' }),
    type: Type.String(),
    created_at: Time('When the change committed.'),
    tenant_id: NullableText,
    data: Type.Record(Type.String(), Type.Unknown(), { description: 'The object after the change.' }),
    previous_attributes: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Updates only: the changed keys with their old values.' })),
  },
  { title: 'Event' },
);

export const HeldDeletionSchema = Type.Object(
  {
    tenant_id: Type.String(),
    objects: Type.Union([Type.Literal('users'), Type.Literal('groups')], { description: 'Whose sync run is held.' }),
    run_id: Type.String(),
    kind: Type.Union([Type.Literal('full'), Type.Literal('delta')]),
    started_at: Time('When the held run started.'),
    listed: Type.Integer({ description: 'Objects the held run read.' }),
  },
  { title: 'HeldDeletion', description: 'A sync run that would remove more than 30% of the tenant\'s users (or groups and memberships) and waits for a decision.' },
);

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

export function tenantOut(t: TenantRecord): ApiTenant {
  return { id: t.id, display_name: t.displayName, domains: t.domains, state: t.state, state_reason: t.stateReason, user_count: t.userCount, created_at: iso(t.createdAt), updated_at: iso(t.updatedAt) };
}

export function userOut(tenantId: string, u: DirectoryUser): ApiUser {
  return {
    id: u.id,
    tenant_id: tenantId,
    state: u.status,
    display_name: u.displayName,
    given_name: u.givenName,
    surname: u.surname,
    mail: u.mail,
    user_principal_name: u.userPrincipalName,
    job_title: u.jobTitle,
    department: u.department,
    office_location: u.officeLocation,
    account_enabled: u.accountEnabled,
    user_type: u.userType,
    employee_id: u.employeeId,
    company_name: u.companyName,
    mobile_phone: u.mobilePhone,
    business_phones: u.businessPhones,
    roster_role: u.rosterRole,
    deleted_at: isoOrNull(u.deletedAt),
    last_sign_in_at: isoOrNull(u.lastSignInAt),
    updated_at: iso(u.updatedAt),
  };
}

export function heldOut(h: HeldDeletion): Static<typeof HeldDeletionSchema> {
  return { tenant_id: h.tenant.id, run_id: h.run.id, kind: h.run.kind, started_at: iso(h.run.startedAt), objects: h.objects, listed: h.run.listed };
}
