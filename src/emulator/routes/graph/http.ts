import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GraphError } from '../../errors.ts';
import { canReadGroups, canReadUsers, GRAPH_WWW_AUTHENTICATE, isAuthFailure, type GraphAuthenticator, type GraphCaller } from '../../graph-auth.ts';
import { GRAPH_JSON_CONTENT_TYPE, parseSelect } from '../../graph-serialize.ts';
import type { GraphUserProperty } from '../../model.ts';

/** Graph's default page of `/users`, and its largest. */
export const USERS_DEFAULT_TOP = 100;
export const MAX_PAGE = 999;

export type QueryOptions = Map<string, string>;

/**
 * Graph accepts system query options with or without `$` and in any case; the
 * last value wins. Options Graph does not know are ignored, as clients add some.
 */
export function queryOptions(request: FastifyRequest): QueryOptions {
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
export function parsePrefer(header: string | string[] | undefined): { maxPageSize: number | undefined; minimal: boolean } {
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

/** Verifies the bearer token; a failure is Graph's 401 with its `WWW-Authenticate`. */
export async function authenticate(auth: GraphAuthenticator, request: FastifyRequest): Promise<GraphCaller> {
  const result = await auth.authenticate(request.headers.authorization);
  if (isAuthFailure(result)) throw new GraphError(401, result.code, result.message, { 'www-authenticate': GRAPH_WWW_AUTHENTICATE });
  return result;
}

/** A caller that may list every user (User.Read.All and its betters). */
export async function authenticateUserReader(auth: GraphAuthenticator, request: FastifyRequest): Promise<GraphCaller> {
  const caller = await authenticate(auth, request);
  if (!canReadUsers(caller)) throw forbidden();
  return caller;
}

/** A caller that may read groups and memberships (GroupMember.Read.All, Group.Read.All, Directory.Read.All and their betters). */
export async function authenticateGroupReader(auth: GraphAuthenticator, request: FastifyRequest): Promise<GraphCaller> {
  const caller = await authenticate(auth, request);
  if (!canReadGroups(caller)) throw forbidden();
  return caller;
}

export function sendJson(reply: FastifyReply, body: string | Buffer, headers: Record<string, string> = {}): FastifyReply {
  const clientRequestId = reply.request.headers['client-request-id'];
  const requestId = randomUUID();
  return reply
    .code(200)
    .headers({
      'content-type': GRAPH_JSON_CONTENT_TYPE,
      'cache-control': 'no-cache',
      'request-id': requestId,
      'client-request-id': typeof clientRequestId === 'string' ? clientRequestId : requestId,
      ...headers,
    })
    .send(body);
}

/** 400 for query options the emulator (or Graph without `ConsistencyLevel: eventual`) refuses. */
export function refuseUnsupported(request: FastifyRequest, options: QueryOptions): void {
  if (options.has('search')) {
    const eventual = String(request.headers.consistencylevel ?? '').toLowerCase() === 'eventual';
    throw new GraphError(
      400,
      'Request_UnsupportedQuery',
      eventual
        ? '$search is not supported by the emulator.'
        : "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
    );
  }
  if (options.has('count') && options.get('count') !== 'false') throw new GraphError(400, 'Request_BadRequest', '$count is not currently supported.');
  if (options.has('skip')) throw new GraphError(400, 'Request_BadRequest', "'$skip' is not supported by the service.");
  if (options.has('filter')) throw new GraphError(400, 'Request_UnsupportedQuery', 'Unsupported or invalid query filter clause specified for the emulator.');
  if (options.has('orderby')) throw new GraphError(400, 'Request_UnsupportedQuery', 'Sorting not supported for current query.');
}

/** The `$select` list (null for Graph's default properties); an unknown property is a 400. */
export function selectOf(raw: string | undefined): GraphUserProperty[] | null {
  const parsed = parseSelect(raw);
  if (parsed.ok) return parsed.select;
  throw new GraphError(400, 'Request_BadRequest', `Could not find a property named '${parsed.property}' on type 'microsoft.graph.user'.`);
}

/** `$top`, between 1 and 999. */
export function pageSizeOf(rawTop: string | undefined): number {
  if (rawTop === undefined) return USERS_DEFAULT_TOP;
  if (/^\s*\d+\s*$/.test(rawTop) && Number(rawTop) >= 1 && Number(rawTop) <= MAX_PAGE) return Number(rawTop);
  throw new GraphError(400, 'Request_UnsupportedQuery', `Invalid page size specified: '${rawTop}'. Must be between 1 and ${MAX_PAGE} inclusive.`);
}

export function forbidden(): GraphError {
  return new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
}

export function expiredPageToken(): GraphError {
  return new GraphError(400, 'Directory_ExpiredPageToken', 'The specified page token value has expired and can no longer be included in your request.');
}
