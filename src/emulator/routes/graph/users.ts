import type { FastifyInstance, FastifyReply } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import { GraphError } from '../../errors.ts';
import { canReadMe, canReadUsers, type GraphAuthenticator } from '../../graph-auth.ts';
import { decodeToken, encodeToken, type GraphToken } from '../../graph-delta.ts';
import type { PreparedPage } from '../../graph-readahead.ts';
import { isFullSelect, selectFromToken, userJson, usersContext, withContext } from '../../graph-serialize.ts';
import type { GraphUserProperty, Tenant, UserRecord } from '../../model.ts';
import { authenticate, authenticateUserReader, expiredPageToken, forbidden, pageSizeOf, queryOptions, refuseUnsupported, selectOf, sendJson } from './http.ts';

/** Where a `/users` page starts and what it holds. */
interface UsersPageRequest {
  select: GraphUserProperty[] | null;
  top: number;
  afterOrdinal: number;
}

/** `/users` (paged, with read-ahead), `/users/{id}`, `/me` and soft-deleted users. */
export function registerUserRoutes(app: FastifyInstance, ctx: EmulatorContext, auth: GraphAuthenticator): void {
  app.get('/v1.0/users', async (request, reply) => {
    const tenant = (await authenticateUserReader(auth, request)).tenant;
    const options = queryOptions(request);
    const skiptoken = options.get('skiptoken');
    let wanted: UsersPageRequest;
    if (skiptoken !== undefined) {
      const token = decodeToken(skiptoken);
      if (!token || token.k !== 'u' || token.t !== tenant.id) throw expiredPageToken();
      wanted = { select: selectFromToken(token.s), top: token.n, afterOrdinal: token.o };
    } else {
      refuseUnsupported(request, options);
      wanted = { select: selectOf(options.get('select')), top: pageSizeOf(options.get('top')), afterOrdinal: -1 };
    }
    const page = (skiptoken !== undefined ? ctx.pageReadAhead.take(skiptoken, tenant) : undefined) ?? buildUsersPage(ctx, tenant, wanted);
    sendJson(reply, page.body);
    const next = page.next !== undefined ? decodeToken(page.next) : undefined;
    if (page.next !== undefined && next?.k === 'u') {
      ctx.pageReadAhead.schedule(page.next, tenant, () => buildUsersPage(ctx, tenant, { ...wanted, afterOrdinal: next.o }));
    }
    return reply;
  });

  app.get<{ Params: { id: string } }>('/v1.0/users/:id', async (request, reply) => {
    const caller = await authenticate(auth, request);
    const ref = request.params.id;
    const user = findActiveUser(caller.tenant, ref);
    // A signed-in user may always read their own profile (User.Read).
    const self = user !== undefined && caller.delegated && user.props.id === caller.oid && canReadMe(caller);
    if (!self && !canReadUsers(caller)) throw forbidden();
    const select = selectOf(queryOptions(request).get('select'));
    if (!user) throw notFound(ref);
    return sendUser(ctx, reply, user, select);
  });

  app.get('/v1.0/me', async (request, reply) => {
    const caller = await authenticate(auth, request);
    if (!caller.delegated) throw new GraphError(400, 'BadRequest', '/me request is only valid with delegated authentication flow.');
    if (!canReadMe(caller)) throw forbidden();
    const select = selectOf(queryOptions(request).get('select'));
    const user = caller.oid ? caller.tenant.usersById.get(caller.oid) : undefined;
    if (!user) throw notFound(caller.oid ?? 'me');
    return sendUser(ctx, reply, user, select);
  });

  // Soft-deleted users, restorable for 30 days: what a full listing (which omits them) cannot tell apart from purged ones.
  app.get('/v1.0/directory/deletedItems/microsoft.graph.user', async (request, reply) => {
    const tenant = (await authenticateUserReader(auth, request)).tenant;
    const options = queryOptions(request);
    let page: Extract<GraphToken, { k: 'di' }>;
    const skiptoken = options.get('skiptoken');
    if (skiptoken !== undefined) {
      const token = decodeToken(skiptoken);
      if (!token || token.k !== 'di' || token.t !== tenant.id) throw expiredPageToken();
      page = token;
    } else {
      refuseUnsupported(request, options);
      const select = selectOf(options.get('select'));
      page = { k: 'di', t: tenant.id, i: 0, s: select?.join(',') ?? '', n: pageSizeOf(options.get('top')) };
    }
    const select = withId(selectFromToken(page.s));
    const deleted = [...tenant.deletedUsers.values()];
    const end = Math.min(page.i + page.n, deleted.length);
    const items = deleted.slice(page.i, end).map((user) => userJson(user, select));
    const nextLink =
      end < deleted.length ? `"@odata.nextLink":${JSON.stringify(`${ctx.urls.graph}/v1.0/directory/deletedItems/microsoft.graph.user?$skiptoken=${encodeToken({ ...page, i: end })}`)},` : '';
    return sendJson(reply, `{"@odata.context":${JSON.stringify(`${ctx.urls.graph}/v1.0/$metadata#directoryObjects/microsoft.graph.user`)},${nextLink}"value":[${items.join(',')}]}`);
  });
}

/** Delta and deleted items always return `id`, whatever the select. */
export function withId(select: GraphUserProperty[] | null): GraphUserProperty[] | null {
  return select === null || select.includes('id') ? select : [...select, 'id'];
}

/** One `/users` page: the JSON body and the `$skiptoken` of the next page, if any. */
function buildUsersPage(ctx: EmulatorContext, tenant: Tenant, wanted: UsersPageRequest): PreparedPage {
  const { select, top } = wanted;
  const users = tenant.users;
  const start = ctx.directory.indexAfterOrdinal(tenant, wanted.afterOrdinal);
  const end = Math.min(start + top, users.length);
  const parts = usersJson(users, start, end, select);
  let next: string | undefined;
  let nextLink = '';
  if (end < users.length) {
    next = encodeToken({ k: 'u', t: tenant.id, o: users[end - 1]!.ordinal, s: select?.join(',') ?? '', n: top });
    nextLink = `"@odata.nextLink":${JSON.stringify(`${ctx.urls.graph}/v1.0/users?$skiptoken=${next}`)},`;
  }
  const context = JSON.stringify(usersContext(ctx.urls.graph, select));
  return { body: `{"@odata.context":${context},${nextLink}"value":[${parts.join(',')}]}`, next };
}

/** The JSON of users[start..end), from each user's cached serialisation when it fits the select (the hot path of a sync). */
function usersJson(users: UserRecord[], start: number, end: number, select: GraphUserProperty[] | null): string[] {
  const parts: string[] = new Array(end - start);
  if (select === null) {
    for (let i = start; i < end; i++) parts[i - start] = users[i]!.cachedJson ?? userJson(users[i]!, null);
  } else if (isFullSelect(select)) {
    for (let i = start; i < end; i++) parts[i - start] = users[i]!.fullJson ?? userJson(users[i]!, select);
  } else {
    const key = select.join(',');
    for (let i = start; i < end; i++) {
      const user = users[i]!;
      parts[i - start] = user.cachedSelect === key && user.cachedSelectJson !== undefined ? user.cachedSelectJson : userJson(user, select, key);
    }
  }
  return parts;
}

export function findActiveUser(tenant: Tenant, ref: string): UserRecord | undefined {
  const byId = tenant.usersById.get(ref.toLowerCase());
  if (byId) return byId;
  if (!ref.includes('@')) return undefined;
  const lower = ref.toLowerCase();
  return tenant.users.find((u) => u.props.userPrincipalName.toLowerCase() === lower);
}

function sendUser(ctx: EmulatorContext, reply: FastifyReply, user: UserRecord, select: GraphUserProperty[] | null): FastifyReply {
  return sendJson(reply, withContext(usersContext(ctx.urls.graph, select, '/$entity'), userJson(user, select)));
}

export function notFound(ref: string): GraphError {
  return new GraphError(404, 'Request_ResourceNotFound', `Resource '${ref}' does not exist or one of its queried reference-property objects are not present.`);
}
