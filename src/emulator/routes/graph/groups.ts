import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import { GraphError } from '../../errors.ts';
import type { GraphAuthenticator } from '../../graph-auth.ts';
import { decodeToken, encodeToken, type GraphToken } from '../../graph-delta.ts';
import { groupJson, groupsContext, parseGroupSelect } from '../../graph-groups.ts';
import { serializerFor, userJson, withContext } from '../../graph-serialize.ts';
import { directMemberOf, GRAPH_GROUP_PROPERTIES, transitiveMemberOf, transitiveMembers, type GraphGroupProperty } from '../../groups.ts';
import { GRAPH_USER_PROPERTIES, groupInsertionIndex, type GraphUserProperty, type Tenant } from '../../model.ts';
import { authenticateGroupReader, expiredPageToken, pageSizeOf, queryOptions, refuseUnsupported, sendJson } from './http.ts';
import { findActiveUser, notFound } from './users.ts';

type ListToken = Extract<GraphToken, { k: 'gl' }>;

/** The membership listings: whose objects (a group's or a user's) and how each list is computed. */
const LISTINGS = {
  members: (tenant: Tenant, id: string) => tenant.groupsById.get(id)!.members,
  transitiveMembers: (tenant: Tenant, id: string) => {
    const found = transitiveMembers(tenant, id);
    return [...found.groups, ...found.users];
  },
  memberOf: directMemberOf,
  transitiveMemberOf,
} as const;
type Listing = keyof typeof LISTINGS;

/** `/groups` (paged), `/groups/{id}`, a group's direct and transitive members, and the groups a user is in. */
export function registerGroupRoutes(app: FastifyInstance, ctx: EmulatorContext, auth: GraphAuthenticator): void {
  app.get('/v1.0/groups', async (request, reply) => {
    const tenant = (await authenticateGroupReader(auth, request)).tenant;
    const options = queryOptions(request);
    const skiptoken = options.get('skiptoken');
    let page: Extract<GraphToken, { k: 'g' }>;
    if (skiptoken !== undefined) {
      const token = decodeToken(skiptoken);
      if (!token || token.k !== 'g' || token.t !== tenant.id) throw expiredPageToken();
      page = token;
    } else {
      refuseUnsupported(request, options);
      const props = groupPropsOf(options.get('select'));
      page = { k: 'g', t: tenant.id, o: -1, s: props?.join(',') ?? '', n: pageSizeOf(options.get('top')) };
    }
    const props = groupPropsOf(page.s || undefined);
    const groups = tenant.groups;
    const from = groupInsertionIndex(tenant, page.o + 1);
    const end = Math.min(from + page.n, groups.length);
    const items = groups.slice(from, end).map((g) => groupJson(g.props, props));
    const nextLink = end < groups.length ? `"@odata.nextLink":${JSON.stringify(`${ctx.urls.graph}/v1.0/groups?$skiptoken=${encodeToken({ ...page, o: groups[end - 1]!.ordinal })}`)},` : '';
    return sendJson(reply, `{"@odata.context":${JSON.stringify(groupsContext(ctx.urls.graph, props))},${nextLink}"value":[${items.join(',')}]}`);
  });

  app.get<{ Params: { id: string } }>('/v1.0/groups/:id', async (request, reply) => {
    const tenant = (await authenticateGroupReader(auth, request)).tenant;
    const props = groupPropsOf(queryOptions(request).get('select'));
    const group = tenant.groupsById.get(request.params.id.toLowerCase());
    if (!group) throw notFound(request.params.id);
    return sendJson(reply, withContext(groupsContext(ctx.urls.graph, props, '/$entity'), groupJson(group.props, props)));
  });

  for (const listing of ['members', 'transitiveMembers'] as const) {
    app.get<{ Params: { id: string } }>(`/v1.0/groups/:id/${listing}`, async (request, reply) => {
      const tenant = (await authenticateGroupReader(auth, request)).tenant;
      const group = tenant.groupsById.get(request.params.id.toLowerCase());
      if (!group) throw notFound(request.params.id);
      return sendListing(reply, request, tenant, listing, group.props.id);
    });
  }
  for (const listing of ['memberOf', 'transitiveMemberOf'] as const) {
    app.get<{ Params: { id: string } }>(`/v1.0/users/:id/${listing}`, async (request, reply) => {
      const tenant = (await authenticateGroupReader(auth, request)).tenant;
      const user = findActiveUser(tenant, request.params.id);
      if (!user) throw notFound(request.params.id);
      return sendListing(reply, request, tenant, listing, user.props.id);
    });
  }

  /** One page of a membership listing: directory objects, each with its `@odata.type`. */
  function sendListing(reply: FastifyReply, request: FastifyRequest, tenant: Tenant, listing: Listing, id: string): FastifyReply {
    const options = queryOptions(request);
    const skiptoken = options.get('skiptoken');
    let page: ListToken;
    if (skiptoken !== undefined) {
      const token = decodeToken(skiptoken);
      if (!token || token.k !== 'gl' || token.t !== tenant.id || token.v !== listing || token.id !== id) throw expiredPageToken();
      page = token;
    } else {
      refuseUnsupported(request, options);
      const names = directoryObjectSelect(options.get('select'));
      page = { k: 'gl', t: tenant.id, v: listing, id, i: 0, s: names?.join(',') ?? '', n: pageSizeOf(options.get('top')) };
    }
    const names = page.s ? page.s.split(',') : null;
    // Only objects that exist now are listed: a soft-deleted user stays a member but is not served.
    const ids = LISTINGS[listing](tenant, id).filter((m) => tenant.usersById.has(m) || tenant.groupsById.has(m));
    const end = Math.min(page.i + page.n, ids.length);
    const items = ids.slice(page.i, end).map((m) => directoryObjectJson(tenant, m, names));
    const path = listing === 'memberOf' || listing === 'transitiveMemberOf' ? `users/${id}/${listing}` : `groups/${id}/${listing}`;
    const nextLink = end < ids.length ? `"@odata.nextLink":${JSON.stringify(`${ctx.urls.graph}/v1.0/${path}?$skiptoken=${encodeToken({ ...page, i: end })}`)},` : '';
    return sendJson(reply, `{"@odata.context":${JSON.stringify(`${ctx.urls.graph}/v1.0/$metadata#directoryObjects`)},${nextLink}"value":[${items.join(',')}]}`);
  }
}

/** A `/groups` `$select` (null: every property); `members` is a relationship, not a property, here. */
function groupPropsOf(raw: string | undefined): GraphGroupProperty[] | null {
  const parsed = parseGroupSelect(raw, false);
  if (parsed.ok) return parsed.select.props;
  throw new GraphError(400, 'Request_BadRequest', `Could not find a property named '${parsed.property}' on type 'microsoft.graph.group'.`);
}

const USER_PROPERTY_BY_LOWER = new Map<string, string>(GRAPH_USER_PROPERTIES.map((p) => [p.toLowerCase(), p]));
const GROUP_PROPERTY_BY_LOWER = new Map<string, string>(GRAPH_GROUP_PROPERTIES.map((p) => [p.toLowerCase(), p]));

/** A `$select` over users and groups alike: each name must belong to one of them. */
function directoryObjectSelect(raw: string | undefined): string[] | null {
  if (raw === undefined || raw.trim() === '') return null;
  const names: string[] = [];
  for (const part of raw.split(',')) {
    const lower = part.trim().toLowerCase();
    if (lower === '') continue;
    const name = USER_PROPERTY_BY_LOWER.get(lower) ?? GROUP_PROPERTY_BY_LOWER.get(lower);
    if (!name) throw new GraphError(400, 'Request_BadRequest', `Could not find a property named '${part.trim()}' on type 'microsoft.graph.directoryObject'.`);
    if (!names.includes(name)) names.push(name);
  }
  if (!names.includes('id')) names.push('id');
  return names;
}

function directoryObjectJson(tenant: Tenant, id: string, names: string[] | null): string {
  const group = tenant.groupsById.get(id);
  let json: string;
  let type: string;
  if (group) {
    type = '#microsoft.graph.group';
    json = groupJson(group.props, names ? (names.filter((n) => GROUP_PROPERTY_BY_LOWER.has(n.toLowerCase())) as GraphGroupProperty[]) : null);
  } else {
    const user = tenant.usersById.get(id)!;
    type = '#microsoft.graph.user';
    json = names ? serializerFor(names.filter((n) => USER_PROPERTY_BY_LOWER.has(n.toLowerCase())) as GraphUserProperty[])(user.props) : userJson(user, null);
  }
  return `{"@odata.type":"${type}",${json.slice(1)}`;
}
