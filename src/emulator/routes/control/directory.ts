import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import { z } from 'zod';
import { asciiSlug } from '../../ascii.ts';
import { ControlInputError } from '../../errors.ts';
import { DirectoryError, type Tenant, type UserInput } from '../../model.ts';
import { seededRandom } from '../../random.ts';
import { generateGroups } from '../../seed-groups.ts';
import { DEFAULT_PASSWORD, generateUsers, GROUP_SEED_SALT, seededGuid } from '../../seed.ts';
import { registerGroupControl } from './groups.ts';
import { consentSchema, deleteManySchema, findDeleted, parse, resolveApp, tenantCreateSchema, tenantPatchSchema, tenantSummary, userCreateSchema, userPatchSchema, userView, type Params } from './shared.ts';

type TenantOf = (request: FastifyRequest) => Tenant;

/** Tenants, their users, consent, the change log and delta expiry. */
export function registerDirectoryControl(scope: FastifyInstance, ctx: EmulatorContext): void {
  const tenantOf: TenantOf = (request) => ctx.directory.requireTenant((request.params as Params).tenant!);
  registerTenantControl(scope, ctx, tenantOf);
  registerUserControl(scope, ctx, tenantOf);
  registerConsentControl(scope, ctx, tenantOf);
  registerGroupControl(scope, ctx, tenantOf);
}

function registerTenantControl(scope: FastifyInstance, ctx: EmulatorContext, tenantOf: TenantOf): void {
  const d = ctx.directory;
  scope.post('/tenants', async (request, reply) => {
    const body = parse(tenantCreateSchema, request.body);
    const slug = asciiSlug(body.displayName);
    if (!body.domains && !slug) throw new ControlInputError('domains: give domains, or a displayName with letters to derive them from');
    const tenant = d.addTenant({
      displayName: body.displayName,
      domains: body.domains ?? [`${slug}.onmicrosoft.com`, `${slug}.com`],
      ...(body.id ? { id: body.id } : {}),
      ...(body.countryLetterCode ? { countryLetterCode: body.countryLetterCode } : {}),
    });
    if (body.generateUsers) {
      d.addUsersUnchecked(tenant, generateUsers(tenant, { count: body.generateUsers, seed: body.seed ?? 1, password: body.password ?? DEFAULT_PASSWORD }));
    }
    if (body.generateGroups) d.addGroupsUnchecked(tenant, generateGroups(tenant, { count: body.generateGroups, seed: (body.seed ?? 1) ^ GROUP_SEED_SALT, guid: seededGuid }));
    if (body.consent) d.grantAdminConsent(tenant, resolveApp(ctx, 'demo'));
    return reply.code(201).send(tenantSummary(ctx, tenant));
  });

  scope.get('/tenants/:tenant', async (request) => tenantSummary(ctx, tenantOf(request)));

  scope.patch('/tenants/:tenant', async (request) => {
    const body = parse(tenantPatchSchema, request.body);
    return tenantSummary(ctx, d.editTenant((request.params as Params).tenant!, body));
  });

  scope.delete('/tenants/:tenant', async (request) => {
    const tenant = tenantOf(request);
    d.removeTenant(tenant.id);
    return { removed: tenant.id };
  });

}

function registerUserControl(scope: FastifyInstance, ctx: EmulatorContext, tenantOf: TenantOf): void {
  const d = ctx.directory;
  scope.post('/tenants/:tenant/users', async (request, reply) => {
    const body = parse(userCreateSchema, request.body) as UserInput;
    return reply.code(201).send(userView(d.addUser(tenantOf(request), body)));
  });

  scope.get('/tenants/:tenant/users/:user', async (request) => {
    const tenant = tenantOf(request);
    const ref = (request.params as Params).user!;
    const deleted = tenant.usersById.has(ref) ? undefined : findDeleted(tenant, ref);
    if (deleted) return { ...userView(deleted), deleted: true };
    return { ...userView(d.requireUser(tenant, ref)), deleted: false };
  });

  scope.patch('/tenants/:tenant/users/:user', async (request) => {
    const body = parse(userPatchSchema, request.body) as UserInput;
    return userView(d.editUser(tenantOf(request), (request.params as Params).user!, body));
  });

  scope.delete('/tenants/:tenant/users/:user', async (request) => {
    const tenant = tenantOf(request);
    const ref = (request.params as Params).user!;
    const { permanent } = parse(z.object({ permanent: z.enum(['true', 'false']).optional() }), request.query);
    if (permanent === 'true') {
      const deleted = findDeleted(tenant, ref);
      const id = deleted ? deleted.props.id : d.requireUser(tenant, ref).props.id;
      d.purgeUser(tenant, id);
      return { id, deleted: 'permanent' };
    }
    const user = d.softDeleteUser(tenant, ref);
    return { id: user.props.id, deleted: 'soft' };
  });

  scope.post('/tenants/:tenant/users/:user/restore', async (request) => {
    const tenant = tenantOf(request);
    const ref = (request.params as Params).user!;
    const deleted = findDeleted(tenant, ref);
    if (!deleted) throw new DirectoryError(404, `no deleted user ${ref} in tenant ${tenant.id}`);
    return userView(d.restoreUser(tenant, deleted.props.id));
  });

  // A share of the tenant's users at once, as when a directory clean-up goes wrong; administrators are spared so the tenant stays manageable.
  scope.post('/tenants/:tenant/users/delete-many', async (request) => {
    const tenant = tenantOf(request);
    const body = parse(deleteManySchema, request.body);
    const count = body.count ?? Math.round(body.share! * tenant.users.length);
    const candidates = tenant.users.filter((u) => !u.admin);
    if (count > candidates.length) throw new ControlInputError(`count: ${tenant.defaultDomain} has ${candidates.length} users who are not administrators, fewer than ${count}`);
    const random = seededRandom(body.seed);
    // The first `count` places of a seeded Fisher-Yates shuffle: the same users for the same seed.
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(random() * (candidates.length - i));
      [candidates[i], candidates[j]] = [candidates[j]!, candidates[i]!];
    }
    const chosen = candidates.slice(0, count);
    for (const user of chosen) {
      if (body.permanent) d.purgeUser(tenant, user.props.id);
      else d.softDeleteUser(tenant, user.props.id);
    }
    return { tenant: tenant.id, deleted: body.permanent ? 'permanent' : 'soft', count, remaining: tenant.users.length, users: chosen.map((u) => u.props.userPrincipalName) };
  });
}

/** Consent grants and revocations, the change log that delta replays, and delta expiry. */
function registerConsentControl(scope: FastifyInstance, ctx: EmulatorContext, tenantOf: TenantOf): void {
  const d = ctx.directory;
  // ---- consent ----
  scope.post('/tenants/:tenant/consent', async (request, reply) => {
    const body = parse(consentSchema, request.body);
    const tenant = tenantOf(request);
    const app = resolveApp(ctx, body.appId ?? 'demo');
    // With appRoles, the consent grants exactly those (e.g. without the group permission), whatever the app asks for.
    const sp = body.appRoles ? d.setConsentedAppRoles(tenant, app, body.appRoles) : d.grantAdminConsent(tenant, app);
    return reply.code(201).send({ tenant: tenant.id, appId: sp.appId, servicePrincipalId: sp.id, appRoles: sp.appRoles, readyAt: new Date(sp.readyAtMs).toISOString() });
  });

  const revoke = async (request: FastifyRequest) => {
    const tenant = tenantOf(request);
    const app = resolveApp(ctx, (request.params as Params).appId ?? 'demo');
    const { revokeTokens } = parse(z.object({ revokeTokens: z.enum(['true', 'false']).optional() }), request.query);
    d.revokeConsent(tenant, app.appId, { revokeTokens: revokeTokens === 'true' });
    return { tenant: tenant.id, revoked: app.appId, tokensRevoked: revokeTokens === 'true' };
  };
  scope.delete('/tenants/:tenant/consent', revoke);
  scope.delete('/tenants/:tenant/consent/:appId', revoke);

  scope.get('/tenants/:tenant/changes', async (request) => {
    const tenant = tenantOf(request);
    const query = parse(z.strictObject({ sinceSeq: z.coerce.number().int().min(0).default(0), limit: z.coerce.number().int().min(1).default(1000) }), request.query);
    // The log is in sequence order, so a binary search finds the start.
    let lo = 0;
    let hi = tenant.changeLog.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (tenant.changeLog[mid]!.seq <= query.sinceSeq) lo = mid + 1;
      else hi = mid;
    }
    return { tenant: tenant.id, seq: tenant.seq, deltaFloor: tenant.deltaFloor, changes: tenant.changeLog.slice(lo, lo + query.limit) };
  });

  // ---- delta ----
  scope.post('/tenants/:tenant/delta/expire', async (request) => {
    const tenant = tenantOf(request);
    tenant.deltaFloor = tenant.seq + 1;
    return { tenant: tenant.id, deltaFloor: tenant.deltaFloor };
  });
}
