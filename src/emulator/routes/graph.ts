import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { sendGraphError } from '../errors.ts';
import { canReadMe, canReadUsers, GRAPH_WWW_AUTHENTICATE, GraphAuthenticator, isAuthFailure, type GraphCaller } from '../graph-auth.ts';
import { PageReadAhead, type PreparedPage } from '../graph-readahead.ts';
import { ChangeSetCache, decodeToken, deltaStateExpired, encodeToken, type GraphToken } from '../graph-delta.ts';
import {
  GRAPH_JSON_CONTENT_TYPE,
  parseSelect,
  selectFromToken,
  serializerFor,
  isFullSelect,
  userJson,
  usersContext,
  withContext,
} from '../graph-serialize.ts';
import { DEFAULT_USER_SELECT, type GraphUserProperty, type Tenant, type UserRecord } from '../model.ts';

/** Graph's default and largest page of `/users`. */
const USERS_DEFAULT_TOP = 100;
const MAX_PAGE = 999;
/** Users per delta page when the client sends no `Prefer: odata.maxpagesize` (real Graph's is not documented). */
const DELTA_DEFAULT_PAGE = 100;

const MSG_PRIVILEGES = 'Insufficient privileges to complete the operation.';

type QueryOptions = Map<string, string>;

/**
 * Graph accepts system query options with or without `$` and in any case; the
 * last value wins. Options Graph does not know are ignored, as clients add some.
 */
function queryOptions(request: FastifyRequest): QueryOptions {
  const options: QueryOptions = new Map();
  const query = request.query as Record<string, string | string[] | undefined> | undefined;
  if (!query) return options;
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    const name = key.toLowerCase().replace(/^\$/, '');
    options.set(name, Array.isArray(value) ? value[value.length - 1]! : value);
  }
  return options;
}

/** `Prefer` header: `odata.maxpagesize=N` and `return=minimal`, comma separated, possibly repeated. */
function parsePrefer(header: string | string[] | undefined): { maxPageSize: number | undefined; minimal: boolean } {
  const raw = Array.isArray(header) ? header.join(',') : (header ?? '');
  let maxPageSize: number | undefined;
  let minimal = false;
  for (const part of raw.split(',')) {
    const [name, value] = part.split('=').map((s) => s.trim().toLowerCase().replace(/^"|"$/g, ''));
    if (name === 'odata.maxpagesize' && value && /^\d+$/.test(value)) maxPageSize = Math.min(Math.max(Number(value), 1), MAX_PAGE);
    else if (name === 'return' && value === 'minimal') minimal = true;
  }
  return { maxPageSize, minimal };
}

export function registerGraphRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  const auth = new GraphAuthenticator(ctx);
  const changeSets = new ChangeSetCache();
  const readAhead = new PageReadAhead();
  const now = () => new Date(ctx.clock.nowMs());

  const error = (reply: FastifyReply, status: number, code: string, message: string, headers: Record<string, string> = {}) =>
    sendGraphError(reply, status, code, message, now(), headers);

  /** Verifies the bearer token; answers the request with Graph's error and returns undefined when it fails. */
  const authenticate = async (request: FastifyRequest, reply: FastifyReply): Promise<GraphCaller | undefined> => {
    const result = await auth.authenticate(request.headers.authorization);
    if (isAuthFailure(result)) {
      await error(reply, 401, result.code, result.message, { 'www-authenticate': GRAPH_WWW_AUTHENTICATE });
      return undefined;
    }
    return result;
  };

  const sendJson = (reply: FastifyReply, body: string | Buffer, headers: Record<string, string> = {}) => {
    const clientRequestId = reply.request.headers['client-request-id'];
    const requestId = randomUUID();
    reply
      .code(200)
      .headers({
        'content-type': GRAPH_JSON_CONTENT_TYPE,
        'cache-control': 'no-cache',
        'request-id': requestId,
        'client-request-id': typeof clientRequestId === 'string' ? clientRequestId : requestId,
        ...headers,
      })
      .send(body);
    return reply;
  };

  /** 400 for query options the emulator (or Graph without `ConsistencyLevel: eventual`) refuses. */
  const refuseUnsupported = (request: FastifyRequest, reply: FastifyReply, options: QueryOptions): boolean => {
    if (options.has('search')) {
      const eventual = String(request.headers.consistencylevel ?? '').toLowerCase() === 'eventual';
      error(
        reply,
        400,
        'Request_UnsupportedQuery',
        eventual
          ? '$search is not supported by the emulator.'
          : "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
      );
      return true;
    }
    if (options.has('count') && options.get('count') !== 'false') {
      error(reply, 400, 'Request_BadRequest', '$count is not currently supported.');
      return true;
    }
    if (options.has('skip')) {
      error(reply, 400, 'Request_BadRequest', "'$skip' is not supported by the service.");
      return true;
    }
    if (options.has('filter')) {
      error(reply, 400, 'Request_UnsupportedQuery', 'Unsupported or invalid query filter clause specified for the emulator.');
      return true;
    }
    if (options.has('orderby')) {
      error(reply, 400, 'Request_UnsupportedQuery', 'Sorting not supported for current query.');
      return true;
    }
    return false;
  };

  const selectOrError = (reply: FastifyReply, raw: string | undefined): { select: GraphUserProperty[] | null } | undefined => {
    const parsed = parseSelect(raw);
    if (parsed.ok) return { select: parsed.select };
    error(reply, 400, 'Request_BadRequest', `Could not find a property named '${parsed.property}' on type 'microsoft.graph.user'.`);
    return undefined;
  };

  const forbidden = (reply: FastifyReply) => error(reply, 403, 'Authorization_RequestDenied', MSG_PRIVILEGES);

  const notFound = (reply: FastifyReply, ref: string) =>
    error(reply, 404, 'Request_ResourceNotFound', `Resource '${ref}' does not exist or one of its queried reference-property objects are not present.`);

  // ---- /users -----------------------------------------------------------------

  /** One `/users` page: the JSON body and the `$skiptoken` of the next page, if any. */
  const buildUsersPage = (tenant: Tenant, select: GraphUserProperty[] | null, top: number, afterOrdinal: number): PreparedPage => {
    const users = tenant.users;
    const start = ctx.directory.indexAfterOrdinal(tenant, afterOrdinal);
    const end = Math.min(start + top, users.length);
    const parts: string[] = new Array(end - start);
    if (select === null) {
      for (let i = start; i < end; i++) {
        const user = users[i]!;
        parts[i - start] = user.cachedJson ?? userJson(user, null);
      }
    } else if (isFullSelect(select)) {
      for (let i = start; i < end; i++) {
        const user = users[i]!;
        parts[i - start] = user.fullJson ?? userJson(user, select);
      }
    } else {
      const key = select.join(',');
      for (let i = start; i < end; i++) {
        const user = users[i]!;
        parts[i - start] = user.cachedSelect === key && user.cachedSelectJson !== undefined ? user.cachedSelectJson : userJson(user, select, key);
      }
    }
    let next: string | undefined;
    let nextLink = '';
    if (end < users.length) {
      next = encodeToken({ k: 'u', t: tenant.id, o: users[end - 1]!.ordinal, s: select?.join(',') ?? '', n: top });
      nextLink = `"@odata.nextLink":${JSON.stringify(`${ctx.urls.graph}/v1.0/users?$skiptoken=${next}`)},`;
    }
    const context = JSON.stringify(usersContext(ctx.urls.graph, select));
    return { body: `{"@odata.context":${context},${nextLink}"value":[${parts.join(',')}]}`, next };
  };

  app.get('/v1.0/users', async (request, reply) => {
    const caller = await authenticate(request, reply);
    if (!caller) return reply;
    if (!canReadUsers(caller)) return forbidden(reply);
    const tenant = caller.tenant;
    const options = queryOptions(request);
    let select: GraphUserProperty[] | null;
    let top: number;
    let afterOrdinal: number;
    const skiptoken = options.get('skiptoken');
    if (skiptoken !== undefined) {
      const token = decodeToken(skiptoken);
      if (!token || token.k !== 'u' || token.t !== tenant.id) {
        return error(reply, 400, 'Directory_ExpiredPageToken', 'The specified page token value has expired and can no longer be included in your request.');
      }
      select = selectFromToken(token.s);
      top = token.n;
      afterOrdinal = token.o;
    } else {
      if (refuseUnsupported(request, reply, options)) return reply;
      const parsed = selectOrError(reply, options.get('select'));
      if (!parsed) return reply;
      select = parsed.select;
      const rawTop = options.get('top');
      if (rawTop === undefined) {
        top = USERS_DEFAULT_TOP;
      } else if (/^\s*\d+\s*$/.test(rawTop) && Number(rawTop) >= 1 && Number(rawTop) <= MAX_PAGE) {
        top = Number(rawTop);
      } else {
        return error(reply, 400, 'Request_UnsupportedQuery', `Invalid page size specified: '${rawTop}'. Must be between 1 and ${MAX_PAGE} inclusive.`);
      }
      afterOrdinal = -1;
    }

    const page = (skiptoken !== undefined ? readAhead.take(skiptoken, tenant) : undefined) ?? buildUsersPage(tenant, select, top, afterOrdinal);
    sendJson(reply, page.body);
    if (page.next !== undefined) {
      const nextOrdinal = decodeToken(page.next);
      if (nextOrdinal?.k === 'u') readAhead.schedule(page.next, tenant, () => buildUsersPage(tenant, select, top, nextOrdinal.o));
    }
    return reply;
  });

  // ---- /users/delta -----------------------------------------------------------

  /** Delta always returns `id`, whatever the select. */
  const deltaProps = (select: GraphUserProperty[] | null): GraphUserProperty[] | null =>
    select === null || select.includes('id') ? select : [...select, 'id'];

  const deltaExpired = (tenant: Tenant, state: { seq: number; f: number; iat: number }) => deltaStateExpired(tenant, state, ctx.clock.nowMs());

  const sendResync = (reply: FastifyReply, selectCsv: string) =>
    error(reply, 410, 'syncStateNotFound', 'The sync state is not found or expired; a resync is required.', {
      location: `${ctx.urls.graph}/v1.0/users/delta${selectCsv ? `?$select=${selectCsv}` : ''}`,
    });

  const removedJson = (id: string, reason: 'changed' | 'deleted') => `{"id":${JSON.stringify(id)},"@removed":{"reason":"${reason}"}}`;

  /** One page of a delta round, ending with a next link or (last page) a delta link. */
  const sendDeltaPage = (
    reply: FastifyReply,
    tenant: Tenant,
    state: { selectCsv: string; minimal: boolean; pageSize: number },
    items: string[],
    next: GraphToken | undefined,
    deltaSeq: number,
  ) => {
    const select = selectFromToken(state.selectCsv);
    const link = next
      ? `"@odata.nextLink":${JSON.stringify(`${ctx.urls.graph}/v1.0/users/delta?$skiptoken=${encodeToken(next)}`)}`
      : `"@odata.deltaLink":${JSON.stringify(
          `${ctx.urls.graph}/v1.0/users/delta?$deltatoken=${encodeToken({
            k: 'dt',
            t: tenant.id,
            seq: deltaSeq,
            s: state.selectCsv,
            m: state.minimal,
            n: state.pageSize,
            f: tenant.deltaFloor,
            iat: ctx.clock.nowMs(),
          })}`,
        )}`;
    const headers: Record<string, string> = state.minimal ? { 'preference-applied': 'return=minimal' } : {};
    return sendJson(reply, `{"@odata.context":${JSON.stringify(usersContext(ctx.urls.graph, select))},${link},"value":[${items.join(',')}]}`, headers);
  };

  const fullRoundPage = (reply: FastifyReply, tenant: Tenant, token: Extract<GraphToken, { k: 'df' }>) => {
    const props = deltaProps(selectFromToken(token.s));
    const users = tenant.users;
    const start = ctx.directory.indexAfterOrdinal(tenant, token.o);
    const end = Math.min(start + token.n, users.length);
    const key = props?.join(',');
    const items: string[] = [];
    for (let i = start; i < end; i++) items.push(userJson(users[i]!, props, key));
    const next: GraphToken | undefined = end < users.length ? { ...token, o: users[end - 1]!.ordinal } : undefined;
    return sendDeltaPage(reply, tenant, { selectCsv: token.s, minimal: token.m, pageSize: token.n }, items, next, token.seq);
  };

  const changeRoundPage = (reply: FastifyReply, tenant: Tenant, token: Extract<GraphToken, { k: 'dc' }>) => {
    const select = selectFromToken(token.s);
    const props = deltaProps(select);
    const set = changeSets.get(tenant, token.from, token.to);
    const end = Math.min(token.i + token.n, set.ids.length);
    const items: string[] = [];
    for (let i = token.i; i < end; i++) {
      const id = set.ids[i]!;
      const active: UserRecord | undefined = tenant.usersById.get(id);
      if (active) {
        const changed = set.changed.get(id);
        if (token.m && changed) {
          const minimalProps = (props ?? DEFAULT_USER_SELECT).filter((p) => p === 'id' || changed.has(p));
          items.push(serializerFor(minimalProps)(active.props));
        } else {
          items.push(userJson(active, props));
        }
      } else if (tenant.deletedUsers.has(id)) {
        items.push(removedJson(id, 'changed'));
      } else if (tenant.purgedUserIds.has(id)) {
        items.push(removedJson(id, 'deleted'));
      }
    }
    const next: GraphToken | undefined = end < set.ids.length ? { ...token, i: end } : undefined;
    return sendDeltaPage(reply, tenant, { selectCsv: token.s, minimal: token.m, pageSize: token.n }, items, next, token.to);
  };

  app.get('/v1.0/users/delta', async (request, reply) => {
    const caller = await authenticate(request, reply);
    if (!caller) return reply;
    if (!canReadUsers(caller)) return forbidden(reply);
    const tenant = caller.tenant;
    const options = queryOptions(request);
    const skiptoken = options.get('skiptoken');
    const deltatoken = options.get('deltatoken');

    if (skiptoken !== undefined || (deltatoken !== undefined && deltatoken !== 'latest')) {
      const token = decodeToken((skiptoken ?? deltatoken)!);
      const kindOk = token && (skiptoken !== undefined ? token.k === 'df' || token.k === 'dc' : token.k === 'dt');
      if (!token || !kindOk || token.t !== tenant.id) return error(reply, 400, 'Request_BadRequest', 'Badly formed token.');
      switch (token.k) {
        case 'df':
          if (deltaExpired(tenant, token)) return sendResync(reply, token.s);
          return fullRoundPage(reply, tenant, token);
        case 'dc':
          if (deltaExpired(tenant, { seq: token.from, f: token.f, iat: token.iat })) return sendResync(reply, token.s);
          return changeRoundPage(reply, tenant, token);
        case 'dt':
          if (deltaExpired(tenant, token)) return sendResync(reply, token.s);
          return changeRoundPage(reply, tenant, { ...token, k: 'dc', from: token.seq, to: tenant.seq, i: 0, f: tenant.deltaFloor, iat: ctx.clock.nowMs() });
        default:
          return error(reply, 400, 'Request_BadRequest', 'Badly formed token.');
      }
    }

    // First call of a round: query options and preferences are folded into the tokens from here on.
    if (refuseUnsupported(request, reply, options)) return reply;
    const parsed = selectOrError(reply, options.get('select'));
    if (!parsed) return reply;
    const prefer = parsePrefer(request.headers.prefer);
    const state = {
      selectCsv: parsed.select?.join(',') ?? '',
      minimal: prefer.minimal,
      pageSize: prefer.maxPageSize ?? DELTA_DEFAULT_PAGE,
    };
    if (deltatoken === 'latest') return sendDeltaPage(reply, tenant, state, [], undefined, tenant.seq);
    return fullRoundPage(reply, tenant, {
      k: 'df',
      t: tenant.id,
      seq: tenant.seq,
      o: -1,
      s: state.selectCsv,
      m: state.minimal,
      n: state.pageSize,
      f: tenant.deltaFloor,
      iat: ctx.clock.nowMs(),
    });
  });

  // ---- single users -------------------------------------------------------------

  const findActiveUser = (tenant: Tenant, ref: string): UserRecord | undefined => {
    const byId = tenant.usersById.get(ref.toLowerCase());
    if (byId) return byId;
    if (!ref.includes('@')) return undefined;
    const lower = ref.toLowerCase();
    return tenant.users.find((u) => u.props.userPrincipalName.toLowerCase() === lower);
  };

  const sendUser = (reply: FastifyReply, user: UserRecord, select: GraphUserProperty[] | null) =>
    sendJson(reply, withContext(usersContext(ctx.urls.graph, select, '/$entity'), userJson(user, select)));

  app.get<{ Params: { id: string } }>('/v1.0/users/:id', async (request, reply) => {
    const caller = await authenticate(request, reply);
    if (!caller) return reply;
    const ref = request.params.id;
    const user = findActiveUser(caller.tenant, ref);
    // A signed-in user may always read their own profile (User.Read).
    const self = user !== undefined && caller.delegated && user.props.id === caller.oid && canReadMe(caller);
    if (!self && !canReadUsers(caller)) return forbidden(reply);
    const parsed = selectOrError(reply, queryOptions(request).get('select'));
    if (!parsed) return reply;
    if (!user) return notFound(reply, ref);
    return sendUser(reply, user, parsed.select);
  });

  app.get('/v1.0/me', async (request, reply) => {
    const caller = await authenticate(request, reply);
    if (!caller) return reply;
    if (!caller.delegated) return error(reply, 400, 'BadRequest', '/me request is only valid with delegated authentication flow.');
    if (!canReadMe(caller)) return forbidden(reply);
    const parsed = selectOrError(reply, queryOptions(request).get('select'));
    if (!parsed) return reply;
    const user = caller.oid ? caller.tenant.usersById.get(caller.oid) : undefined;
    if (!user) return notFound(reply, caller.oid ?? 'me');
    return sendUser(reply, user, parsed.select);
  });

  // ---- deleted items ---------------------------------------------------------------

  // Soft-deleted users, restorable for 30 days: what a full listing (which omits them) cannot tell apart from purged ones.
  app.get('/v1.0/directory/deletedItems/microsoft.graph.user', async (request, reply) => {
    const caller = await authenticate(request, reply);
    if (!caller) return reply;
    if (!canReadUsers(caller)) return forbidden(reply);
    const tenant = caller.tenant;
    const options = queryOptions(request);
    let page: Extract<GraphToken, { k: 'di' }>;
    const skiptoken = options.get('skiptoken');
    if (skiptoken !== undefined) {
      const token = decodeToken(skiptoken);
      if (!token || token.k !== 'di' || token.t !== tenant.id) {
        return error(reply, 400, 'Directory_ExpiredPageToken', 'The specified page token value has expired and can no longer be included in your request.');
      }
      page = token;
    } else {
      if (refuseUnsupported(request, reply, options)) return reply;
      const parsed = selectOrError(reply, options.get('select'));
      if (!parsed) return reply;
      const rawTop = options.get('top');
      if (rawTop !== undefined && !(/^\s*\d+\s*$/.test(rawTop) && Number(rawTop) >= 1 && Number(rawTop) <= MAX_PAGE)) {
        return error(reply, 400, 'Request_UnsupportedQuery', `Invalid page size specified: '${rawTop}'. Must be between 1 and ${MAX_PAGE} inclusive.`);
      }
      page = { k: 'di', t: tenant.id, i: 0, s: parsed.select?.join(',') ?? '', n: rawTop === undefined ? USERS_DEFAULT_TOP : Number(rawTop) };
    }
    const select = deltaProps(selectFromToken(page.s));
    const deleted = [...tenant.deletedUsers.values()];
    const end = Math.min(page.i + page.n, deleted.length);
    const items = deleted.slice(page.i, end).map((user) => userJson(user, select));
    const nextLink =
      end < deleted.length ? `"@odata.nextLink":${JSON.stringify(`${ctx.urls.graph}/v1.0/directory/deletedItems/microsoft.graph.user?$skiptoken=${encodeToken({ ...page, i: end })}`)},` : '';
    return sendJson(reply, `{"@odata.context":${JSON.stringify(`${ctx.urls.graph}/v1.0/$metadata#directoryObjects/microsoft.graph.user`)},${nextLink}"value":[${items.join(',')}]}`);
  });

  // ---- organization -------------------------------------------------------------

  // Any valid token of the tenant may read it (real Graph wants Organization.Read.All or User.Read).
  app.get('/v1.0/organization', async (request, reply) => {
    const caller = await authenticate(request, reply);
    if (!caller) return reply;
    const t = caller.tenant;
    const body = {
      '@odata.context': `${ctx.urls.graph}/v1.0/$metadata#organization`,
      value: [
        {
          id: t.id,
          displayName: t.displayName,
          verifiedDomains: t.domains.map((name, i) => ({
            capabilities: 'Email, OfficeCommunicationsOnline',
            isDefault: name === t.defaultDomain,
            isInitial: i === 0,
            name,
            type: 'Managed',
          })),
          tenantType: 'AAD',
          countryLetterCode: t.countryLetterCode,
          createdDateTime: t.createdDateTime,
        },
      ],
    };
    return sendJson(reply, JSON.stringify(body));
  });

  // Anything else under /v1.0 is outside what the emulator serves; Graph answers unknown segments this way.
  app.get('/v1.0/*', async (request, reply) => {
    const caller = await authenticate(request, reply);
    if (!caller) return reply;
    const raw = request.url.split('?')[0]!.split('/')[2] ?? '';
    let segment = raw;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      // keep it encoded
    }
    return error(reply, 400, 'BadRequest', `Resource not found for the segment '${segment}'.`);
  });
}
