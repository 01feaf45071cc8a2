import { Type } from 'typebox';
import { requireScope, apiKeyOf, visibleTenant, type ApiRoutePlugin } from '../context.ts';
import { decodeCursor, DEFAULT_LIMIT, PageOf, PageParams, pageOf } from '../pagination.ts';
import { problems, TenantParams, TenantSchema, tenantOut } from '../schemas.ts';

const TenantsQuery = Type.Object({ ...PageParams }, { additionalProperties: false });

/** Tenants: the organisations signed up to Roster (a key limited to one tenant sees only it). */
export const tenantRoutes: ApiRoutePlugin = async (app, { tenants }) => {
  app.get(
    '/tenants',
    {
      onRequest: requireScope('directory:read'),
      schema: { tags: ['tenants'], summary: 'List tenants', operationId: 'listTenants', querystring: TenantsQuery, response: { 200: PageOf(TenantSchema, 'TenantPage'), ...problems(400) } },
    },
    async (request) => {
      const limit = request.query.limit ?? DEFAULT_LIMIT;
      const after = decodeCursor('tenants', request.query.after);
      const rows = await tenants.pageById({ limit: limit + 1, only: apiKeyOf(request).tenantId, ...(after === undefined ? {} : { after }) });
      return pageOf('tenants', rows, limit, (t) => t.id, tenantOut);
    },
  );

  app.get(
    '/tenants/:tenant_id',
    {
      onRequest: requireScope('directory:read'),
      schema: { tags: ['tenants'], summary: 'Get a tenant', operationId: 'getTenant', params: TenantParams, response: { 200: TenantSchema, ...problems(400, 404) } },
    },
    async (request) => tenantOut(await visibleTenant(request, tenants, request.params.tenant_id)),
  );
};
