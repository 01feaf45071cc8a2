import { Type } from 'typebox';
import { ApiNotFoundError } from '../errors.ts';
import { InvalidInputError } from '../../tenants/errors.ts';
import { requireScope, visibleTenant, type ApiRoutePlugin } from '../context.ts';
import { decodeCursor, DEFAULT_LIMIT, encodeCursor, PageOf, PageParams } from '../pagination.ts';
import { problems, TenantParams, TenantUserParams, UserSchema, userOut } from '../schemas.ts';

const USER_STATES = ['active', 'disabled', 'deleted', 'guest'] as const;
const PAGE_HEAD = Buffer.from('{"data":');
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

const UsersQuery = Type.Object(
  {
    ...PageParams,
    state: Type.Optional(Type.Enum(USER_STATES, { description: 'Only users in this state.' })),
    updated_since: Type.Optional(Type.String({ maxLength: 40, description: 'RFC 3339 time: only users Roster changed at or after it.' })),
    search: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Case-insensitive text in the name, mail, user principal name or department.' })),
  },
  { additionalProperties: false },
);

/** An RFC 3339 time whose date exists (`Date.parse` rolls 2026-02-30 over into March). */
function isRfc3339(text: string): boolean {
  const match = RFC3339.exec(text);
  if (!match) return false;
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day && month >= 1 && month <= 12;
}

/** Users of a tenant, in id order, keyset-paged. */
export const userRoutes: ApiRoutePlugin = async (app, { tenants, users }) => {
  app.get(
    '/tenants/:tenant_id/users',
    {
      onRequest: requireScope('directory:read'),
      schema: { tags: ['users'], summary: "List a tenant's users", operationId: 'listUsers', params: TenantParams, querystring: UsersQuery, response: { 200: PageOf(UserSchema, 'UserPage'), ...problems(400, 404) } },
    },
    async (request, reply) => {
      const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
      const { limit = DEFAULT_LIMIT, state, search, updated_since: since } = request.query;
      let updatedSince: number | undefined;
      if (since !== undefined) {
        updatedSince = isRfc3339(since) ? Date.parse(since) : Number.NaN;
        if (Number.isNaN(updatedSince)) throw new InvalidInputError('updated_since', '"updated_since" must be an RFC 3339 time such as 2026-01-31T09:00:00Z.');
      }
      const list = `users:${tenant.id}`;
      const after = decodeCursor(list, request.query.after);
      const page = await users.apiPageById(
        tenant.id,
        { ...(state ? { state } : {}), ...(search ? { search } : {}), ...(updatedSince === undefined ? {} : { updatedSince }) },
        { limit, ...(after === undefined ? {} : { after }) },
        // userOut's objects have UserSchema's fields in its order, so JSON.stringify writes what the schema's serialiser would, in one flat string.
        (shown) => Buffer.from(JSON.stringify(shown.map((u) => userOut(tenant.id, u)))),
      );
      const cursor = page.more ? encodeCursor(list, page.last!) : null;
      const body = Buffer.concat([PAGE_HEAD, page.json, Buffer.from(`,"next_cursor":${JSON.stringify(cursor)}}`)]);
      // The page is JSON as `UserSchema` says already; a Buffer goes out as it is, past the schema's serialiser (hence the cast).
      return reply.type('application/json; charset=utf-8').send(body as never);
    },
  );

  app.get(
    '/tenants/:tenant_id/users/:user_id',
    {
      onRequest: requireScope('directory:read'),
      schema: { tags: ['users'], summary: 'Get a user', operationId: 'getUser', params: TenantUserParams, response: { 200: UserSchema, ...problems(400, 404) } },
    },
    async (request) => {
      const tenant = await visibleTenant(request, tenants, request.params.tenant_id);
      const user = await users.detail(tenant.id, request.params.user_id.toLowerCase());
      if (!user) throw new ApiNotFoundError('This tenant has no user with this id.');
      return userOut(tenant.id, user);
    },
  );
};
