import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import { z } from 'zod';
import { ControlInputError } from '../../errors.ts';
import { describeCertificate } from '../../pki.ts';
import { pendingIdTokenTampers, queueIdTokenTamper } from '../../tamper.ts';
import { appCreateSchema, appSummary, certificateSchema, parse, redirectUriSchema, resolveApp, rotateSchema, saveAll, secretSchema, tamperSchema, type Params } from './shared.ts';

/** App registrations (secrets, certificates, redirect URIs), plus signing keys and spoiled ID tokens. */
export function registerAppControl(scope: FastifyInstance, ctx: EmulatorContext): void {
  registerKeyControl(scope, ctx);
  const d = ctx.directory;

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
}

/** Signing keys (rotation, decoys) and spoiled ID tokens, for relying parties' validation tests. */
function registerKeyControl(scope: FastifyInstance, ctx: EmulatorContext): void {
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
}
