import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import { GraphError } from '../../errors.ts';
import type { GraphAuthenticator } from '../../graph-auth.ts';
import { subscriptionJson, type NewSubscription, type SubscriptionCaller } from '../../subscriptions.ts';
import { authenticate, sendJson } from './http.ts';

type WithId = { Params: { id: string } };

/** `/subscriptions`: create (with the validation handshake), list, read, renew, delete and reauthorize, with app-only tokens. */
export function registerSubscriptionRoutes(app: FastifyInstance, ctx: EmulatorContext, auth: GraphAuthenticator): void {
  const context = `${ctx.urls.graph}/v1.0/$metadata#subscriptions`;

  app.post('/v1.0/subscriptions', async (request, reply) => {
    const caller = await appCaller(auth, request);
    const created = await ctx.subscriptions.create(caller, bodyOf(request));
    return sendJson(reply, JSON.stringify({ '@odata.context': `${context}/$entity`, ...subscriptionJson(created) }), {}, 201);
  });

  app.get('/v1.0/subscriptions', async (request, reply) => {
    const caller = await appCaller(auth, request);
    return sendJson(reply, JSON.stringify({ '@odata.context': context, value: ctx.subscriptions.list(caller).map(subscriptionJson) }));
  });

  app.get<WithId>('/v1.0/subscriptions/:id', async (request, reply) => {
    const caller = await appCaller(auth, request);
    return sendJson(reply, JSON.stringify({ '@odata.context': `${context}/$entity`, ...subscriptionJson(ctx.subscriptions.get(caller, request.params.id)) }));
  });

  app.patch<WithId>('/v1.0/subscriptions/:id', async (request, reply) => {
    const caller = await appCaller(auth, request);
    const updated = await ctx.subscriptions.update(caller, request.params.id, bodyOf(request));
    return sendJson(reply, JSON.stringify({ '@odata.context': `${context}/$entity`, ...subscriptionJson(updated) }));
  });

  app.delete<WithId>('/v1.0/subscriptions/:id', async (request, reply) => {
    const caller = await appCaller(auth, request);
    ctx.subscriptions.remove(caller, request.params.id);
    return noContent(reply);
  });

  app.post<WithId>('/v1.0/subscriptions/:id/reauthorize', async (request, reply) => {
    const caller = await appCaller(auth, request);
    ctx.subscriptions.reauthorize(caller, request.params.id);
    return noContent(reply);
  });
}

/** Subscriptions to users and groups take app-only tokens here (Roster's daemon has no user). */
async function appCaller(auth: GraphAuthenticator, request: FastifyRequest): Promise<SubscriptionCaller> {
  const caller = await authenticate(auth, request);
  if (caller.delegated) throw new GraphError(403, 'ExtensionError', 'Operation: Create; Exception: [Status Code: Forbidden; Reason: The emulator takes application tokens for subscriptions.]');
  const appId = typeof caller.payload.appid === 'string' ? caller.payload.appid : typeof caller.payload.azp === 'string' ? caller.payload.azp : '';
  return { tenant: caller.tenant, appId: appId.toLowerCase(), creatorId: caller.oid ?? appId, roles: caller.roles };
}

function bodyOf(request: FastifyRequest): NewSubscription {
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new GraphError(400, 'BadRequest', 'The request body must be a JSON object.');
  return body as NewSubscription;
}

function noContent(reply: FastifyReply): FastifyReply {
  return reply.code(204).send();
}
