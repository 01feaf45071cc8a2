import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { EVENT_TYPES } from '../../events/types.ts';
import type { Pages, PageServices } from '../context.ts';
import { viewerActor } from '../actor.ts';
import type { PagePlugin } from '../plugins.ts';
import { formBody } from '../schemas.ts';

const EndpointParams = Type.Object({ id: Type.String({ pattern: '^ep_[A-Za-z0-9_-]{16}$' }) });
const DeliveryParams = Type.Object({ id: Type.String({ pattern: '^ep_[A-Za-z0-9_-]{16}$' }), delivery: Type.String({ pattern: '^msg_[A-Za-z0-9_-]{22}$' }) });
const CreateBody = formBody({
  url: Type.String({ maxLength: 2048 }),
  description: Type.Optional(Type.String({ maxLength: 200 })),
  tenant_id: Type.Optional(Type.String({ maxLength: 64 })),
  // One checkbox ticked arrives as a string, several as a list.
  event_types: Type.Optional(Type.Union([Type.String({ maxLength: 40 }), Type.Array(Type.String({ maxLength: 40 }), { maxItems: EVENT_TYPES.length })])),
});
const ActionBody = formBody({});
const DeliveryQuery = Type.Object({ status: Type.Optional(Type.Enum(['pending', 'succeeded', 'failed'])) }, { additionalProperties: false });

export interface WebhookRouteOptions {
  pages: Pages;
  webhooks: PageServices['webhooks'];
}

/** The operator's webhook endpoints: create (secret shown once), enable, disable, rotate, delete; each endpoint's delivery log with replay. */
export const webhookRoutes: PagePlugin<WebhookRouteOptions> = async (app, { pages, webhooks }) => {
  const operator = pages.guard('operator');
  const audit = (request: FastifyRequest, action: string, endpoint: string) => request.log.warn({ endpoint, operator: viewerActor(request).id, action }, `operator ${action} a webhook endpoint`);
  const secretPage = (reply: FastifyReply, title: string, endpoint: { id: string; url: string }, secret: string, status = 200) =>
    pages.render(reply, 'webhook-secret', { title, endpoint, secret }, status);

  app.get('/operator/webhooks', { preHandler: operator }, async (_request, reply) => {
    return pages.render(reply, 'webhooks', { title: 'Webhooks', wide: true, endpoints: await webhooks.list(), eventTypes: EVENT_TYPES });
  });

  app.post('/operator/webhooks', { schema: { body: CreateBody }, preHandler: operator }, async (request, reply) => {
    const { url, description, tenant_id: tenantId, event_types: types } = request.body;
    const eventTypes = types === undefined ? [] : Array.isArray(types) ? types : [types];
    const { endpoint, secret } = await webhooks.create({ url, description: description ?? null, tenantId: tenantId ?? null, eventTypes }, viewerActor(request));
    audit(request, 'created', endpoint.id);
    return secretPage(reply, 'Webhook endpoint created', endpoint, secret, 201);
  });

  app.get('/operator/webhooks/:id', { schema: { params: EndpointParams, querystring: DeliveryQuery }, preHandler: operator }, async (request, reply) => {
    const endpoint = await webhooks.get(request.params.id);
    const deliveries = await webhooks.deliveries(endpoint.id, { limit: 50, ...(request.query.status ? { status: request.query.status } : {}) });
    return pages.render(reply, 'webhook', { title: `Webhook ${endpoint.url}`, wide: true, endpoint, deliveries, status: request.query.status ?? null });
  });

  const action = (path: string, run: (id: string, request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | string>) =>
    app.post(`/operator/webhooks/:id/${path}`, { schema: { params: EndpointParams, body: ActionBody }, preHandler: operator }, async (request, reply) => {
      const outcome = await run(request.params.id, request, reply);
      if (typeof outcome !== 'string') return outcome;
      audit(request, outcome, request.params.id);
      return reply.redirect(outcome === 'deleted' ? '/operator/webhooks' : `/operator/webhooks/${request.params.id}`, 303);
    });
  action('enable', async (id, request) => (await webhooks.setEnabled(id, true, viewerActor(request)), 'enabled'));
  action('disable', async (id, request) => (await webhooks.setEnabled(id, false, viewerActor(request)), 'disabled'));
  action('delete', async (id, request) => (await webhooks.delete(id, viewerActor(request)), 'deleted'));
  action('rotate', async (id, request, reply) => {
    const { endpoint, secret } = await webhooks.rotateSecret(id, viewerActor(request));
    audit(request, 'rotated the secret of', id);
    return secretPage(reply, 'New signing secret', endpoint, secret);
  });

  app.post('/operator/webhooks/:id/deliveries/:delivery/replay', { schema: { params: DeliveryParams, body: ActionBody }, preHandler: operator }, async (request, reply) => {
    await webhooks.replay(request.params.delivery, viewerActor(request), { endpointId: request.params.id });
    audit(request, 'replayed a delivery of', request.params.id);
    return reply.redirect(`/operator/webhooks/${request.params.id}`, 303);
  });
};
