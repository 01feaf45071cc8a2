import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import {
  addKey,
  addPassword,
  applicationJson,
  applyApplicationBody,
  appsOf,
  createApplication,
  findAppByObjectId,
  keyCredentialJson,
  passwordCredentialJson,
  removeKey,
  removePassword,
} from '../../app-registrations.ts';
import { GraphError } from '../../errors.ts';
import { GRAPH_JSON_CONTENT_TYPE } from '../../graph-serialize.ts';
import type { GraphAuthenticator, GraphCaller } from '../../graph-auth.ts';
import type { AppRegistration, ServicePrincipal } from '../../model.ts';
import { authenticate, forbidden, queryOptions, sendJson } from './http.ts';

const READ_APPS = ['Application.Read.All', 'Application.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'];
const WRITE_APPS_SCOPES = ['Application.ReadWrite.All', 'Directory.AccessAsUser.All'];
const WRITE_APPS_ROLES = ['Application.ReadWrite.All'];

function has(granted: ReadonlySet<string>, names: string[]): boolean {
  return names.some((n) => granted.has(n));
}

async function appReader(auth: GraphAuthenticator, request: FastifyRequest): Promise<GraphCaller> {
  const caller = await authenticate(auth, request);
  if (!has(caller.delegated ? caller.scopes : caller.roles, caller.delegated ? [...READ_APPS, 'Directory.AccessAsUser.All'] : READ_APPS)) throw forbidden();
  return caller;
}

/** Writing registrations takes the permission and, for a person, a directory administrator (Global Administrator in the emulator). */
async function appWriter(auth: GraphAuthenticator, request: FastifyRequest): Promise<GraphCaller> {
  const caller = await authenticate(auth, request);
  if (!caller.delegated) {
    if (!has(caller.roles, WRITE_APPS_ROLES)) throw forbidden();
    return caller;
  }
  const user = caller.oid ? caller.tenant.usersById.get(caller.oid) : undefined;
  if (!has(caller.scopes, WRITE_APPS_SCOPES) || !user?.admin) throw forbidden();
  return caller;
}

function created(reply: FastifyReply, body: Record<string, unknown>): FastifyReply {
  return reply.code(201).header('content-type', GRAPH_JSON_CONTENT_TYPE).header('cache-control', 'no-cache').send(JSON.stringify(body));
}

/** `$filter=appId eq '<guid>'`, the one filter these collections need; anything else is refused as Graph refuses what it cannot do. */
function appIdFilter(request: FastifyRequest): string | undefined {
  const filter = queryOptions(request).get('filter');
  if (filter === undefined) return undefined;
  const match = /^\s*appId\s+eq\s+'([0-9a-fA-F-]{36})'\s*$/.exec(filter);
  if (!match) throw new GraphError(400, 'Request_UnsupportedQuery', `Unsupported or invalid query filter clause specified for the emulator: ${filter}`);
  return match[1]!.toLowerCase();
}

function servicePrincipalJson(sp: ServicePrincipal, app: AppRegistration): Record<string, unknown> {
  return {
    id: sp.id,
    appId: sp.appId,
    displayName: app.displayName,
    appOwnerOrganizationId: app.homeTenantId,
    createdDateTime: sp.createdDateTime,
    servicePrincipalType: 'Application',
    accountEnabled: true,
  };
}

/** Graph's app registrations and service principals in the caller's tenant. */
export function registerApplicationRoutes(app: FastifyInstance, ctx: EmulatorContext, auth: GraphAuthenticator): void {
  const base = () => `${ctx.urls.graph}/v1.0/$metadata`;
  registerRegistrationRoutes(app, ctx, auth, base);
  registerServicePrincipalRoutes(app, ctx, auth, base);
}

function registerRegistrationRoutes(app: FastifyInstance, ctx: EmulatorContext, auth: GraphAuthenticator, base: () => string): void {

  app.get('/v1.0/applications', async (request, reply) => {
    const caller = await appReader(auth, request);
    const appId = appIdFilter(request);
    const apps = appsOf(ctx.directory, caller.tenant).filter((a) => appId === undefined || a.appId === appId);
    return sendJson(reply, JSON.stringify({ '@odata.context': `${base()}#applications`, value: apps.map(applicationJson) }));
  });

  app.get<{ Params: { id: string } }>('/v1.0/applications/:id', async (request, reply) => {
    const caller = await appReader(auth, request);
    const registration = findAppByObjectId(ctx.directory, caller.tenant, request.params.id);
    return sendJson(reply, JSON.stringify({ '@odata.context': `${base()}#applications/$entity`, ...applicationJson(registration) }));
  });

  app.post('/v1.0/applications', async (request, reply) => {
    const caller = await appWriter(auth, request);
    const registration = createApplication(ctx.directory, caller.tenant, request.body);
    await ctx.save?.();
    return created(reply, { '@odata.context': `${base()}#applications/$entity`, ...applicationJson(registration) });
  });

  app.patch<{ Params: { id: string } }>('/v1.0/applications/:id', async (request, reply) => {
    const caller = await appWriter(auth, request);
    const registration = findAppByObjectId(ctx.directory, caller.tenant, request.params.id);
    applyApplicationBody(registration, request.body, ctx.clock);
    await ctx.save?.();
    return reply.code(204).send();
  });

  app.post<{ Params: { id: string } }>('/v1.0/applications/:id/addPassword', async (request, reply) => {
    const caller = await appWriter(auth, request);
    const registration = findAppByObjectId(ctx.directory, caller.tenant, request.params.id);
    const secret = addPassword(registration, request.body, ctx.clock);
    await ctx.save?.();
    return sendJson(reply, JSON.stringify({ '@odata.context': `${base()}#microsoft.graph.passwordCredential`, ...passwordCredentialJson(secret, secret.value) }));
  });

  app.post<{ Params: { id: string } }>('/v1.0/applications/:id/removePassword', async (request, reply) => {
    const caller = await appWriter(auth, request);
    removePassword(findAppByObjectId(ctx.directory, caller.tenant, request.params.id), request.body);
    await ctx.save?.();
    return reply.code(204).send();
  });

  app.post<{ Params: { id: string } }>('/v1.0/applications/:id/addKey', async (request, reply) => {
    const caller = await appWriter(auth, request);
    const cert = await addKey(findAppByObjectId(ctx.directory, caller.tenant, request.params.id), request.body, ctx.clock);
    await ctx.save?.();
    return sendJson(reply, JSON.stringify({ '@odata.context': `${base()}#microsoft.graph.keyCredential`, ...keyCredentialJson(cert) }));
  });

  app.post<{ Params: { id: string } }>('/v1.0/applications/:id/removeKey', async (request, reply) => {
    const caller = await appWriter(auth, request);
    await removeKey(findAppByObjectId(ctx.directory, caller.tenant, request.params.id), request.body, ctx.clock);
    await ctx.save?.();
    return reply.code(204).send();
  });

}

function registerServicePrincipalRoutes(app: FastifyInstance, ctx: EmulatorContext, auth: GraphAuthenticator, base: () => string): void {
  app.get('/v1.0/servicePrincipals', async (request, reply) => {
    const caller = await appReader(auth, request);
    const appId = appIdFilter(request);
    const value: Record<string, unknown>[] = [];
    for (const sp of caller.tenant.servicePrincipals.values()) {
      const registration = ctx.directory.apps.get(sp.appId);
      if (registration && (appId === undefined || sp.appId === appId)) value.push(servicePrincipalJson(sp, registration));
    }
    return sendJson(reply, JSON.stringify({ '@odata.context': `${base()}#servicePrincipals`, value }));
  });

  app.post('/v1.0/servicePrincipals', async (request, reply) => {
    const caller = await appWriter(auth, request);
    const body = request.body as { appId?: unknown } | undefined;
    const appId = typeof body?.appId === 'string' ? body.appId.toLowerCase() : undefined;
    if (!appId) throw new GraphError(400, 'Request_BadRequest', "Property 'appId' is required.");
    const registration = ctx.directory.apps.get(appId);
    if (!registration) throw new GraphError(400, 'Request_BadRequest', `The appId '${appId}' of the service principal does not reference a valid application object.`);
    if (caller.tenant.servicePrincipals.has(appId)) {
      throw new GraphError(409, 'Request_MultipleObjectsWithSameKeyValue', 'The service principal cannot be created, updated, or restored because the service principal name is already in use.');
    }
    const sp = ctx.directory.ensureServicePrincipal(caller.tenant, registration);
    await ctx.save?.();
    return created(reply, { '@odata.context': `${base()}#servicePrincipals/$entity`, ...servicePrincipalJson(sp, registration) });
  });
}
