import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { EmulatorContext } from '../context.ts';
import type { FaultSpec } from '../faults.ts';
import { DirectoryError, GROUP_MEMBERSHIP_CLAIMS, isGuid, type AppRegistration, type Tenant, type UserInput, type UserRecord } from '../model.ts';
import { describeCertificate } from '../pki.ts';
import { saveState } from '../persistence.ts';
import { DEFAULT_PASSWORD, formatPath, generateUsers } from '../seed.ts';
import { ID_TOKEN_TAMPERS, pendingIdTokenTampers, queueIdTokenTamper } from '../tamper.ts';

/** Bad input to the control API: 400 with a message that says which field. */
class ControlInputError extends Error {
  readonly statusCode = 400;
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
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
const userPatchSchema = z.strictObject(userFields).partial();
const userCreateSchema = z.strictObject({ ...userFields, id: guid, createdDateTime: isoDate }).partial();

const tenantCreateSchema = z.strictObject({
  displayName: z.string().min(1),
  domains: z.array(domain).min(1).optional(),
  id: guid.optional(),
  countryLetterCode: z.string().regex(/^[A-Z]{2}$/, 'must be two capital letters').optional(),
  generateUsers: z.number().int().min(0).max(2_000_000).optional(),
  seed: z.number().int().optional(),
  password: z.string().min(1).optional(),
  consent: z.boolean().optional(),
});
const tenantPatchSchema = z.strictObject({
  displayName: z.string().min(1).optional(),
  countryLetterCode: z.string().regex(/^[A-Z]{2}$/, 'must be two capital letters').optional(),
  addDomains: z.array(domain).optional(),
});
const consentSchema = z.strictObject({ appId: z.string().optional() });
const rotateSchema = z.strictObject({ dropPrevious: z.boolean().optional() });
const tamperSchema = z.strictObject({ kind: z.enum(ID_TOKEN_TAMPERS) });
const appCreateSchema = z.strictObject({
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
const certificateSchema = z.strictObject({ certPem: z.string().includes('BEGIN CERTIFICATE', { message: 'must be a PEM certificate' }) });
const secretSchema = z.strictObject({ expiresAt: isoDate.optional(), value: z.string().min(16).optional() });
const redirectUriSchema = z.strictObject({ uri: z.url(), kind: z.enum(['redirect', 'postLogout']).default('redirect') });
const faultSchema = z
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
const requestsQuerySchema = z.strictObject({
  tenant: z.string().optional(),
  route: z.string().optional(),
  sinceMs: z.coerce.number().optional(),
  limit: z.coerce.number().int().min(1).optional(),
});
const clockSchema = z.strictObject({ advanceSeconds: z.number().finite() });
const settingsSchema = z.strictObject({
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

function appSummary(app: AppRegistration) {
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

function userView(user: UserRecord) {
  return { ...user.props, admin: user.admin };
}

function settingsView(ctx: EmulatorContext) {
  return {
    consentPropagationSeconds: ctx.directory.consentPropagationSeconds,
    missingServicePrincipalError: ctx.directory.missingServicePrincipalError,
    clockOffsetSeconds: ctx.clock.offsetSeconds,
    now: ctx.clock.nowIso(),
  };
}

// ---- helpers -------------------------------------------------------------------

function sameSecret(given: string, expected: string): boolean {
  // Hashing first gives equal lengths, so the comparison time says nothing about the token.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function resolveApp(ctx: EmulatorContext, ref: string): AppRegistration {
  return ctx.directory.requireApp(ref === 'demo' ? ctx.demoAppId : ref.toLowerCase());
}

function findDeleted(tenant: Tenant, ref: string): UserRecord | undefined {
  const byId = tenant.deletedUsers.get(ref.toLowerCase());
  if (byId) return byId;
  const lower = ref.toLowerCase();
  for (const user of tenant.deletedUsers.values()) if (user.props.userPrincipalName.toLowerCase() === lower) return user;
  return undefined;
}

function slugOf(name: string): string {
  return name.normalize('NFD').replace(/[^A-Za-z0-9]/g, '').toLowerCase();
}

type Params = Record<string, string>;

/**
 * The control API (`/_emulator/...` on the pages listener): drives scenarios in
 * a running emulator. Every route needs `Authorization: Bearer <control token>`.
 */
export function registerControlRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  app.register(
    async (scope) => {
      scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
        const header = request.headers.authorization ?? '';
        const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
        if (!token || !sameSecret(token, ctx.controlToken)) {
          return reply
            .code(401)
            .header('www-authenticate', 'Bearer realm="roster-emulator-control"')
            .send({ error: { code: 'Unauthorized', message: 'the control API needs Authorization: Bearer <control token> (printed at start, and in <data dir>/control.json)' } });
        }
      });

      const d = ctx.directory;
      const tenantOf = (request: FastifyRequest): Tenant => d.requireTenant((request.params as Params).tenant!);

      scope.get('/state', async () => ({
        demoAppId: ctx.demoAppId,
        tenants: [...d.tenants.values()].map((t) => tenantSummary(ctx, t)),
        apps: [...d.apps.values()].map(appSummary),
        settings: settingsView(ctx),
        signingKeys: { current: ctx.keyring.currentKid, kids: ctx.keyring.kids },
        urls: ctx.urls,
      }));

      // ---- tenants ----
      scope.post('/tenants', async (request, reply) => {
        const body = parse(tenantCreateSchema, request.body);
        const slug = slugOf(body.displayName);
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

      // ---- users ----
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

      // ---- consent ----
      scope.post('/tenants/:tenant/consent', async (request, reply) => {
        const body = parse(consentSchema, request.body);
        const tenant = tenantOf(request);
        const sp = d.grantAdminConsent(tenant, resolveApp(ctx, body.appId ?? 'demo'));
        return reply.code(201).send({ tenant: tenant.id, appId: sp.appId, servicePrincipalId: sp.id, appRoles: sp.appRoles, readyAt: new Date(sp.readyAtMs).toISOString() });
      });

      const revoke = async (request: FastifyRequest) => {
        const tenant = tenantOf(request);
        const app = resolveApp(ctx, (request.params as Params).appId ?? 'demo');
        d.revokeConsent(tenant, app.appId);
        return { tenant: tenant.id, revoked: app.appId };
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

      // ---- signing keys ----
      scope.post('/keys/rotate', async (request) => {
        const body = parse(rotateSchema, request.body);
        const kid = await ctx.keyring.rotate({ dropPrevious: body.dropPrevious ?? false });
        // Keys live in the data folder: a restart must not resurrect the old set.
        if (ctx.dataDir) await saveAll(ctx);
        return { kid, kids: ctx.keyring.kids, saved: ctx.dataDir !== null };
      });

      // ---- spoiled ID tokens, for relying parties' validation tests ----
      scope.post('/id-tokens/tamper', async (request) => {
        const body = parse(tamperSchema, request.body);
        queueIdTokenTamper(ctx, body.kind);
        return { pending: pendingIdTokenTampers(ctx) };
      });
      scope.put('/keys/decoys', async (request) => {
        const body = parse(z.strictObject({ enabled: z.boolean() }), request.body);
        ctx.keyring.withDecoys = body.enabled;
        return { decoys: ctx.keyring.withDecoys };
      });

      // ---- apps ----
      scope.post('/apps', async (request, reply) => {
        const body = parse(appCreateSchema, request.body);
        const secret = body.withSecret ? { id: randomUUID(), value: randomBytes(30).toString('base64url'), expiresAtMs: ctx.clock.nowMs() + 2 * 365 * 86_400_000 } : null;
        const registered = d.addApp({
          appId: (body.appId ?? randomUUID()).toLowerCase(),
          displayName: body.displayName,
          homeTenantId: body.homeTenant ? d.requireTenant(body.homeTenant).id : null,
          signInAudience: body.signInAudience,
          redirectUris: body.redirectUris,
          postLogoutRedirectUris: body.postLogoutRedirectUris,
          secrets: secret ? [secret] : [],
          certificates: [],
          requiredAppRoles: body.requiredAppRoles,
          disabled: false,
          groupMembershipClaims: body.groupMembershipClaims,
        });
        return reply.code(201).send({ ...appSummary(registered), clientSecret: secret?.value ?? null });
      });

      scope.get('/apps/:appId', async (request) => appSummary(resolveApp(ctx, (request.params as Params).appId!)));

      for (const [action, disabled] of [
        ['disable', true],
        ['enable', false],
      ] as const) {
        scope.post(`/apps/:appId/${action}`, async (request) => {
          const registered = resolveApp(ctx, (request.params as Params).appId!);
          registered.disabled = disabled;
          return appSummary(registered);
        });
      }

      scope.post('/apps/:appId/certificates', async (request, reply) => {
        const body = parse(certificateSchema, request.body);
        const registered = resolveApp(ctx, (request.params as Params).appId!);
        let info: ReturnType<typeof describeCertificate>;
        try {
          info = describeCertificate(body.certPem);
        } catch (err) {
          throw new ControlInputError(`certPem: not a readable certificate (${(err as Error).message})`);
        }
        const cert = {
          id: randomUUID(),
          x5t: info.x5t,
          x5tS256: info.x5tS256,
          publicKeyPem: info.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
          expiresAtMs: info.notAfter.getTime(),
        };
        registered.certificates.push(cert);
        return reply.code(201).send({ appId: registered.appId, id: cert.id, x5t: cert.x5t, x5tS256: cert.x5tS256, expiresAt: info.notAfter.toISOString() });
      });

      scope.post('/apps/:appId/secrets', async (request, reply) => {
        const body = parse(secretSchema, request.body);
        const registered = resolveApp(ctx, (request.params as Params).appId!);
        const secret = {
          id: randomUUID(),
          value: body.value ?? randomBytes(30).toString('base64url'),
          expiresAtMs: body.expiresAt ? Date.parse(body.expiresAt) : ctx.clock.nowMs() + 2 * 365 * 86_400_000,
        };
        registered.secrets.push(secret);
        return reply.code(201).send({ appId: registered.appId, id: secret.id, value: secret.value, expiresAt: new Date(secret.expiresAtMs).toISOString() });
      });

      scope.post('/apps/:appId/redirect-uris', async (request) => {
        const body = parse(redirectUriSchema, request.body);
        const registered = resolveApp(ctx, (request.params as Params).appId!);
        const list = body.kind === 'redirect' ? registered.redirectUris : registered.postLogoutRedirectUris;
        if (!list.includes(body.uri)) list.push(body.uri);
        return appSummary(registered);
      });

      // ---- faults ----
      scope.post('/faults', async (request, reply) => {
        const body = parse(faultSchema, request.body);
        const spec: FaultSpec = { target: body.target, kind: body.kind };
        if (body.tenant) spec.tenant = d.requireTenant(body.tenant).id;
        if (body.retryAfter !== undefined) spec.retryAfter = body.retryAfter;
        if (body.delayMs !== undefined) spec.delayMs = body.delayMs;
        if (body.share !== undefined) spec.share = body.share;
        if (body.count !== undefined) spec.count = body.count;
        return reply.code(201).send(ctx.faults.add(spec));
      });
      scope.get('/faults', async () => ({ faults: ctx.faults.list() }));
      scope.delete('/faults', async () => {
        const removed = ctx.faults.list().length;
        ctx.faults.clear();
        return { removed };
      });
      scope.delete('/faults/:id', async (request) => {
        const id = (request.params as Params).id!;
        if (!ctx.faults.remove(id)) throw new DirectoryError(404, `no fault ${id}`);
        return { removed: 1 };
      });

      // ---- requests served ----
      scope.get('/requests', async (request) => {
        const query = parse(requestsQuerySchema, request.query);
        const filter: { tenant?: string; route?: string; sinceMs?: number } = {};
        if (query.tenant) filter.tenant = d.findTenant(query.tenant)?.id ?? query.tenant.toLowerCase();
        if (query.route) filter.route = query.route;
        if (query.sinceMs !== undefined) filter.sinceMs = query.sinceMs;
        const entries = ctx.requestLog.entries(filter);
        return { count: entries.length, entries: query.limit ? entries.slice(-query.limit) : entries };
      });
      scope.delete('/requests', async () => {
        ctx.requestLog.reset();
        return { reset: true };
      });
      scope.get('/stats', async () => {
        const byRoute = ctx.requestLog.countsByRoute();
        return { total: Object.values(byRoute).reduce((a, b) => a + b, 0), byRoute };
      });

      // ---- time and settings ----
      scope.post('/clock', async (request) => {
        const body = parse(clockSchema, request.body);
        ctx.clock.advance(body.advanceSeconds);
        return { offsetSeconds: ctx.clock.offsetSeconds, now: ctx.clock.nowIso() };
      });
      scope.get('/settings', async () => settingsView(ctx));
      scope.put('/settings', async (request) => {
        const body = parse(settingsSchema, request.body);
        if (body.consentPropagationSeconds !== undefined) d.consentPropagationSeconds = body.consentPropagationSeconds;
        if (body.missingServicePrincipalError !== undefined) d.missingServicePrincipalError = body.missingServicePrincipalError;
        return settingsView(ctx);
      });

      // ---- persistence ----
      scope.post('/save', async (_request, reply) => {
        if (!ctx.dataDir) return reply.code(409).send({ error: { code: 'NoDataFolder', message: 'this emulator keeps its state in memory only (started without a data folder)' } });
        const started = performance.now();
        await saveAll(ctx);
        return { saved: true, dataDir: ctx.dataDir, ms: Math.round(performance.now() - started) };
      });
    },
    { prefix: '/_emulator' },
  );
}

/** The running emulator's own save (state and signing keys); state alone when the context has none. */
async function saveAll(ctx: EmulatorContext): Promise<void> {
  if (ctx.save) return ctx.save();
  if (ctx.dataDir) await saveState(ctx.dataDir, ctx.directory);
}
