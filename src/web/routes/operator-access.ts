import { Type } from 'typebox';
import { InvalidInputError } from '../../tenants/errors.ts';
import { API_KEY_SCOPES } from '../../tenants/api-keys.ts';
import type { Pages, PageServices } from '../context.ts';
import { viewerActor } from '../actor.ts';
import type { PagePlugin } from '../plugins.ts';
import { formBody, GUID_PATTERN } from '../schemas.ts';

/** Actions the audit log holds, offered as suggestions in its filter (others may appear as Roster grows). */
const KNOWN_ACTIONS = ['tenant.suspend', 'tenant.resume', 'tenant.sync', 'held.confirm', 'held.discard', 'api_key.create', 'api_key.revoke', 'organisation.leave', 'user.role', 'user.claim_admin'];
const AUDIT_PAGE_SIZE = 50;

const KeyIdParams = Type.Object({ id: Type.String({ pattern: '^key_[0-9a-f]{16}$' }) });
const NewKeyBody = formBody({
  name: Type.String({ maxLength: 200 }),
  scopes: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 8 })])),
  tenant: Type.Optional(Type.String({ maxLength: 64 })),
});
const AuditQuery = Type.Object(
  {
    tenant: Type.Optional(Type.Union([Type.Literal(''), Type.String({ pattern: GUID_PATTERN })])),
    actor: Type.Optional(Type.String({ maxLength: 200 })),
    action: Type.Optional(Type.String({ maxLength: 64, pattern: '^[a-z_.]*$' })),
    before: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
  },
  { additionalProperties: false },
);

export interface OperatorAccessRouteOptions {
  pages: Pages;
  tenants: PageServices['tenants'];
  apiKeys: PageServices['apiKeys'];
  audit: PageServices['audit'];
}

/** The operator's API keys (created, shown once, revoked) and the audit log, filtered and paged. */
export const operatorAccessRoutes: PagePlugin<OperatorAccessRouteOptions> = async (app, { pages, tenants, apiKeys, audit }) => {
  const operator = pages.guard('operator');

  const keysPage = async (reply: Parameters<Pages['render']>[0], extra: { problem?: { field: string; message: string }; form?: { name: string; scopes: string[]; tenant: string } } = {}, status = 200) => {
    const [keys, all] = await Promise.all([apiKeys.list(), tenants.list()]);
    const names = new Map(all.map((t) => [t.id, t.displayName]));
    return pages.render(reply, 'operator-api-keys', { title: 'API keys', wide: true, keys, tenants: all, tenantNames: names, scopes: API_KEY_SCOPES, form: extra.form ?? { name: '', scopes: [], tenant: '' }, problem: extra.problem ?? null }, status);
  };

  app.get('/operator/api-keys', { preHandler: operator }, async (_request, reply) => keysPage(reply));

  app.post('/operator/api-keys', { schema: { body: NewKeyBody }, preHandler: operator }, async (request, reply) => {
    const scopes = request.body.scopes === undefined ? [] : [request.body.scopes].flat();
    const form = { name: request.body.name, scopes, tenant: request.body.tenant?.trim() ?? '' };
    try {
      const { key, secret } = await apiKeys.create({ name: form.name, scopes, tenantId: form.tenant || null }, viewerActor(request));
      request.log.warn({ key: key.id, operator: viewerActor(request).id }, 'API key created');
      return pages.render(reply, 'operator-api-key-created', { title: 'API key created', key, secret, tenantName: key.tenantId ? ((await tenants.get(key.tenantId))?.displayName ?? key.tenantId) : null }, 201);
    } catch (err) {
      if (err instanceof InvalidInputError) return keysPage(reply, { problem: { field: err.field, message: err.message }, form }, 400);
      throw err;
    }
  });

  app.post('/operator/api-keys/:id/revoke', { schema: { params: KeyIdParams, body: formBody({}) }, preHandler: operator }, async (request, reply) => {
    if (!(await apiKeys.get(request.params.id))) {
      return pages.message(request, reply, 404, { title: 'API key not found', message: 'Roster has no API key with this id.', links: [{ href: '/operator/api-keys', label: 'Back to API keys', primary: true }] });
    }
    if (await apiKeys.revoke(request.params.id, viewerActor(request))) request.log.warn({ key: request.params.id, operator: viewerActor(request).id }, 'API key revoked');
    return reply.redirect('/operator/api-keys', 303);
  });

  app.get('/operator/audit', { schema: { querystring: AuditQuery }, preHandler: operator }, async (request, reply) => {
    const filter = { tenant: request.query.tenant?.toLowerCase() ?? '', actor: request.query.actor?.trim() ?? '', action: request.query.action ?? '' };
    const before = request.query.before === undefined ? undefined : Number(request.query.before);
    const rows = await audit.page(
      { ...(filter.tenant ? { tenantId: filter.tenant } : {}), ...(filter.actor ? { actorId: filter.actor } : {}), ...(filter.action ? { action: filter.action } : {}) },
      { limit: AUDIT_PAGE_SIZE + 1, ...(before === undefined ? {} : { before }) },
    );
    const entries = rows.slice(0, AUDIT_PAGE_SIZE);
    const older = rows.length > AUDIT_PAGE_SIZE ? new URLSearchParams({ ...Object.fromEntries(Object.entries(filter).filter(([, v]) => v)), before: String(entries.at(-1)!.id) }).toString() : null;
    const tenantNames = new Map((await tenants.list()).map((t) => [t.id, t.displayName]));
    return pages.render(reply, 'operator-audit', { title: 'Audit log', wide: true, entries, filter, older, newest: before !== undefined, tenantNames, actions: KNOWN_ACTIONS });
  });
};
