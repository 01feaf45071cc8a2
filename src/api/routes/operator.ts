import { Type } from 'typebox';
import { apiActor, apiKeyOf, requireScope, visibleTenant, type ApiRoutePlugin } from '../context.ts';
import { PageOf, PageParams, decodeCursor, DEFAULT_LIMIT, pageOf } from '../pagination.ts';
import { HeldDeletionSchema, heldOut, problems, TenantParams, TenantSchema, tenantOut } from '../schemas.ts';

const NoBody = Type.Object({}, { additionalProperties: false });
const SyncBody = Type.Object({ full: Type.Optional(Type.Boolean({ description: 'A full listing instead of an incremental round.' })) }, { additionalProperties: false });
const Accepted = Type.Object({ status: Type.Literal('requested') }, { title: 'SyncRequested' });
const HeldOutcome = Type.Object({ decision: Type.Union([Type.Literal('confirm'), Type.Literal('discard')]), removed: Type.Union([Type.Integer(), Type.Null()]) }, { title: 'HeldDecision' });
const HeldQuery = Type.Object({ ...PageParams }, { additionalProperties: false });

/**
 * The operator's actions, through the same `OperatorActions` as the console and
 * the CLI: the same outcome and the same audit entry (with this key as "who").
 */
export const operatorRoutes: ApiRoutePlugin = async (app, { tenants, actions }) => {
  const manage = requireScope('tenants:manage');

  app.post(
    '/tenants/:tenant_id/suspend',
    { onRequest: manage, schema: { tags: ['operator'], summary: 'Suspend a tenant', operationId: 'suspendTenant', params: TenantParams, body: NoBody, response: { 200: TenantSchema, ...problems(400, 404, 409) } } },
    async (request) => {
      const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
      return tenantOut(await actions.suspend(tenant.id, apiActor(request)));
    },
  );

  app.post(
    '/tenants/:tenant_id/resume',
    { onRequest: manage, schema: { tags: ['operator'], summary: 'Resume a suspended tenant', operationId: 'resumeTenant', params: TenantParams, body: NoBody, response: { 200: TenantSchema, ...problems(400, 404, 409) } } },
    async (request) => {
      const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
      return tenantOut(await actions.resume(tenant.id, apiActor(request)));
    },
  );

  app.post(
    '/tenants/:tenant_id/sync',
    { onRequest: manage, schema: { tags: ['operator'], summary: 'Sync a tenant now', operationId: 'syncTenant', params: TenantParams, body: SyncBody, response: { 202: Accepted, ...problems(400, 404, 409) } } },
    async (request, reply) => {
      const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
      await actions.requestSync(tenant.id, apiActor(request), { full: request.body.full ?? false });
      return reply.code(202).send({ status: 'requested' as const });
    },
  );

  app.get(
    '/held-deletions',
    { onRequest: manage, schema: { tags: ['operator'], summary: 'List held mass deletions', operationId: 'listHeldDeletions', querystring: HeldQuery, response: { 200: PageOf(HeldDeletionSchema, 'HeldDeletionPage'), ...problems(400) } } },
    async (request) => {
      const limit = request.query.limit ?? DEFAULT_LIMIT;
      const after = decodeCursor('held-deletions', request.query.after);
      // Few tenants are ever held at once: the list is read whole, then cut at the cursor in id order.
      const held = (await actions.heldDeletions(apiKeyOf(request).tenantId)).sort((a, b) => (a.tenant.id < b.tenant.id ? -1 : 1)).filter((h) => after === undefined || h.tenant.id > after);
      return pageOf('held-deletions', held.slice(0, limit + 1), limit, (h) => h.tenant.id, heldOut);
    },
  );

  for (const decision of ['confirm', 'discard'] as const) {
    app.post(
      `/tenants/:tenant_id/held-deletion/${decision}`,
      {
        onRequest: manage,
        schema: { tags: ['operator'], summary: `${decision === 'confirm' ? 'Confirm' : 'Discard'} a held mass deletion`, operationId: `${decision}HeldDeletion`, params: TenantParams, body: NoBody, response: { 200: HeldOutcome, ...problems(400, 404, 409) } },
      },
      async (request) => {
        const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
        const { removed } = await actions.decideHeld(tenant.id, decision, apiActor(request));
        return { decision, removed };
      },
    );
  }
};
