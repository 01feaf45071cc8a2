import type { FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import type { EndpointView } from '../../events/endpoints.ts';
import { WebhookInputError } from '../../events/errors.ts';
import { EVENT_TYPES } from '../../events/types.ts';
import type { DeliveryWithEvent, WebhookAttemptRow } from '../../store/webhooks.ts';
import { apiActor, apiKeyOf, requireScope, type ApiRoutePlugin, type ApiServices } from '../context.ts';
import { ApiNotFoundError } from '../errors.ts';
import { InvalidInputError } from '../../tenants/errors.ts';
import { DEFAULT_LIMIT, PageOf, PageParams, decodeCursor, pageOf } from '../pagination.ts';
import { GUID_PATTERN, problems } from '../schemas.ts';

const Time = (description: string) => Type.String({ format: 'date-time', description });
const NullableText = Type.Union([Type.String(), Type.Null()]);
const iso = (ms: number) => new Date(ms).toISOString();

const EndpointParams = Type.Object({ endpoint_id: Type.String({ pattern: '^ep_[A-Za-z0-9_-]{16}$', description: 'The endpoint id.' }) });
const DeliveryParams = Type.Object({ endpoint_id: Type.String({ pattern: '^ep_[A-Za-z0-9_-]{16}$' }), delivery_id: Type.String({ pattern: '^msg_[A-Za-z0-9_-]{22}$', description: 'The delivery id.' }) });
const NoBody = Type.Object({}, { additionalProperties: false });
const CreateBody = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048, description: 'https, or http to a loopback address.' }),
    event_types: Type.Optional(Type.Array(Type.Enum(EVENT_TYPES), { maxItems: EVENT_TYPES.length, description: 'Types to deliver; empty or absent: every type.' })),
    tenant_id: Type.Optional(Type.String({ pattern: GUID_PATTERN, description: "Only this tenant's events." })),
    description: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
const ListQuery = Type.Object({ ...PageParams }, { additionalProperties: false });
const DeliveriesQuery = Type.Object({ ...PageParams, status: Type.Optional(Type.Enum(['pending', 'succeeded', 'failed'], { description: 'Only deliveries in this state.' })) }, { additionalProperties: false });

const EndpointSchema = Type.Object(
  {
    id: Type.String(),
    url: Type.String(),
    description: NullableText,
    event_types: Type.Array(Type.String(), { description: 'Empty: every type.' }),
    tenant_id: NullableText,
    enabled: Type.Boolean(),
    disabled_reason: NullableText,
    previous_secret_expires_at: Type.Union([Time('After a rotation: until when the previous secret also signs.'), Type.Null()]),
    created_at: Time('When the endpoint was created.'),
    updated_at: Time('When the endpoint last changed.'),
  },
  { title: 'WebhookEndpoint' },
);
const EndpointWithSecret = Type.Object({ ...EndpointSchema.properties, secret: Type.String({ description: '`whsec_...`: shown only in this answer.' }) }, { title: 'WebhookEndpointWithSecret' });
const AttemptSchema = Type.Object(
  {
    attempted_at: Time('When the attempt was made.'),
    status_code: Type.Union([Type.Integer(), Type.Null()], { description: 'Null when no answer came (network error, timeout).' }),
    latency_ms: Type.Integer(),
    error: NullableText,
    response_excerpt: Type.Union([Type.String(), Type.Null()], { description: 'The start of the answer, as text.' }),
  },
  { title: 'WebhookAttempt' },
);
const DeliverySchema = Type.Object(
  {
    id: Type.String(),
    event_id: Type.String(),
    event_type: Type.String(),
    status: Type.Union([Type.Literal('pending'), Type.Literal('succeeded'), Type.Literal('failed')]),
    attempts: Type.Integer(),
    next_attempt_at: Type.Union([Time('When the next attempt is due.'), Type.Null()]),
    attempt_log: Type.Array(AttemptSchema),
  },
  { title: 'WebhookDelivery' },
);
const Replayed = Type.Object({ status: Type.Literal('pending') }, { title: 'DeliveryReplayed' });

function endpointOut(e: EndpointView): Static<typeof EndpointSchema> {
  return {
    id: e.id,
    url: e.url,
    description: e.description,
    event_types: e.eventTypes,
    tenant_id: e.tenantId,
    enabled: e.enabled,
    disabled_reason: e.disabledReason,
    previous_secret_expires_at: e.previousSecretUntil === null ? null : iso(e.previousSecretUntil),
    created_at: iso(e.createdAt),
    updated_at: iso(e.updatedAt),
  };
}

function deliveryOut(d: DeliveryWithEvent & { attemptLog: WebhookAttemptRow[] }): Static<typeof DeliverySchema> {
  return {
    id: d.id,
    event_id: d.event_id,
    event_type: d.event_type,
    status: d.status,
    attempts: d.attempts,
    next_attempt_at: d.status === 'pending' && d.next_attempt_at !== null ? iso(d.next_attempt_at) : null,
    attempt_log: d.attemptLog.map((a) => ({ attempted_at: iso(a.attempted_at), status_code: a.status_code, latency_ms: a.latency_ms, error: a.error, response_excerpt: a.response_excerpt })),
  };
}

/** Input the endpoint rules refuse, as the API's 400 naming the field. */
async function asApiInput<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof WebhookInputError) throw new InvalidInputError(err.field, err.message);
    throw err;
  }
}

/** The endpoint if this key may see it: a key limited to one tenant sees only that tenant's endpoints; anything else is the same 404 (rule 31). */
async function visibleEndpoint(request: FastifyRequest, webhooks: ApiServices['webhooks'], id: string): Promise<EndpointView> {
  const key = apiKeyOf(request);
  const endpoint = await webhooks.find(id);
  if (!endpoint || (key.tenantId !== null && endpoint.tenantId !== key.tenantId)) throw new ApiNotFoundError('Roster has no webhook endpoint with this id that this API key may see.');
  return endpoint;
}

const manage = requireScope('webhooks:manage');
const tags = ['webhooks'];

/** Webhook endpoints and their deliveries, through the same service (and audit entries) as the console and the CLI. */
export const webhookRoutes: ApiRoutePlugin = async (app, options) => {
  await endpointRoutes(app, options);
  await deliveryRoutes(app, options);
};

const endpointRoutes: ApiRoutePlugin = async (app, { webhooks }) => {

  app.get(
    '/webhook-endpoints',
    { onRequest: manage, schema: { tags, summary: 'List webhook endpoints', operationId: 'listWebhookEndpoints', querystring: ListQuery, response: { 200: PageOf(EndpointSchema, 'WebhookEndpointPage'), ...problems(400) } } },
    async (request) => {
      const key = apiKeyOf(request);
      const limit = request.query.limit ?? DEFAULT_LIMIT;
      const after = decodeCursor('webhook-endpoints', request.query.after);
      const all = (await webhooks.list(key.tenantId === null ? {} : { tenantId: key.tenantId })).sort((a, b) => (a.id < b.id ? -1 : 1)).filter((e) => after === undefined || e.id > after);
      return pageOf('webhook-endpoints', all.slice(0, limit + 1), limit, (e) => e.id, endpointOut);
    },
  );

  app.post(
    '/webhook-endpoints',
    { onRequest: manage, schema: { tags, summary: 'Create a webhook endpoint (its secret is in this answer only)', operationId: 'createWebhookEndpoint', body: CreateBody, response: { 201: EndpointWithSecret, ...problems(400, 404) } } },
    async (request, reply) => {
      const key = apiKeyOf(request);
      const { url, event_types: eventTypes = [], description } = request.body;
      let tenantId = request.body.tenant_id?.toLowerCase() ?? null;
      if (key.tenantId !== null) {
        if (tenantId !== null && tenantId !== key.tenantId) throw new ApiNotFoundError('Roster has no tenant with this id that this API key may see.');
        tenantId = key.tenantId;
      }
      const { endpoint, secret } = await asApiInput(() => webhooks.create({ url, eventTypes, tenantId, description: description ?? null }, apiActor(request)));
      return reply.code(201).send({ ...endpointOut(endpoint), secret });
    },
  );

  app.get(
    '/webhook-endpoints/:endpoint_id',
    { onRequest: manage, schema: { tags, summary: 'Get a webhook endpoint', operationId: 'getWebhookEndpoint', params: EndpointParams, response: { 200: EndpointSchema, ...problems(400, 404) } } },
    async (request) => endpointOut(await visibleEndpoint(request, webhooks, request.params.endpoint_id)),
  );

  for (const state of ['enable', 'disable'] as const) {
    app.post(
      `/webhook-endpoints/:endpoint_id/${state}`,
      { onRequest: manage, schema: { tags, summary: `${state === 'enable' ? 'Enable' : 'Disable'} a webhook endpoint`, operationId: `${state}WebhookEndpoint`, params: EndpointParams, body: NoBody, response: { 200: EndpointSchema, ...problems(400, 404) } } },
      async (request) => {
        const endpoint = await visibleEndpoint(request, webhooks, request.params.endpoint_id);
        return endpointOut(await webhooks.setEnabled(endpoint.id, state === 'enable', apiActor(request)));
      },
    );
  }

  app.post(
    '/webhook-endpoints/:endpoint_id/rotate-secret',
    { onRequest: manage, schema: { tags, summary: 'Rotate the signing secret (the old one keeps signing for a while)', operationId: 'rotateWebhookSecret', params: EndpointParams, body: NoBody, response: { 200: EndpointWithSecret, ...problems(400, 404) } } },
    async (request) => {
      const endpoint = await visibleEndpoint(request, webhooks, request.params.endpoint_id);
      const rotated = await webhooks.rotateSecret(endpoint.id, apiActor(request));
      return { ...endpointOut(rotated.endpoint), secret: rotated.secret };
    },
  );

  app.delete(
    '/webhook-endpoints/:endpoint_id',
    { onRequest: manage, schema: { tags, summary: 'Delete a webhook endpoint and its deliveries', operationId: 'deleteWebhookEndpoint', params: EndpointParams, response: { 204: Type.Null({ description: 'Deleted.' }), ...problems(400, 404) } } },
    async (request, reply) => {
      const endpoint = await visibleEndpoint(request, webhooks, request.params.endpoint_id);
      await webhooks.delete(endpoint.id, apiActor(request));
      return reply.code(204).send(null);
    },
  );

};

const deliveryRoutes: ApiRoutePlugin = async (app, { webhooks }) => {
  app.get(
    '/webhook-endpoints/:endpoint_id/deliveries',
    { onRequest: manage, schema: { tags, summary: "List an endpoint's deliveries, newest first, with their attempts", operationId: 'listWebhookDeliveries', params: EndpointParams, querystring: DeliveriesQuery, response: { 200: PageOf(DeliverySchema, 'WebhookDeliveryPage'), ...problems(400, 404) } } },
    async (request) => {
      const endpoint = await visibleEndpoint(request, webhooks, request.params.endpoint_id);
      const limit = request.query.limit ?? DEFAULT_LIMIT;
      const list = `deliveries:${endpoint.id}`;
      const position = decodeCursor(list, request.query.after);
      if (position !== undefined && !/^\d{1,15}$/.test(position)) throw new InvalidInputError('after', '"after" is not a cursor of this list: pass the next_cursor of the previous page unchanged.');
      const rows = await webhooks.deliveries(endpoint.id, { limit: limit + 1, ...(request.query.status ? { status: request.query.status } : {}), ...(position === undefined ? {} : { before: Number(position) }) });
      return pageOf(list, rows, limit, (d) => String(d.event_sequence), deliveryOut);
    },
  );

  app.post(
    '/webhook-endpoints/:endpoint_id/deliveries/:delivery_id/replay',
    { onRequest: manage, schema: { tags, summary: 'Send a finished delivery again, from the start of the retry schedule', operationId: 'replayWebhookDelivery', params: DeliveryParams, body: NoBody, response: { 202: Replayed, ...problems(400, 404) } } },
    async (request, reply) => {
      const endpoint = await visibleEndpoint(request, webhooks, request.params.endpoint_id);
      await asApiInput(() => webhooks.replay(request.params.delivery_id, apiActor(request), { endpointId: endpoint.id }));
      return reply.code(202).send({ status: 'pending' as const });
    },
  );
};
