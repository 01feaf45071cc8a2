import type { FastifyInstance, FastifyReply } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import { GraphError } from '../../errors.ts';
import type { GraphAuthenticator } from '../../graph-auth.ts';
import { ChangeSetCache, decodeToken, deltaStateExpired, encodeToken, syncStateNotFound, type GraphToken } from '../../graph-delta.ts';
import { selectFromToken, serializerFor, userJson, usersContext } from '../../graph-serialize.ts';
import { DEFAULT_USER_SELECT, type GraphUserProperty, type Tenant } from '../../model.ts';
import { authenticateUserReader, parsePrefer, queryOptions, refuseUnsupported, selectOf, sendJson } from './http.ts';
import { withId } from './users.ts';

/** Users per delta page when the client sends no `Prefer: odata.maxpagesize` (real Graph's is not documented). */
const DELTA_DEFAULT_PAGE = 100;

/** What a delta round carries from page to page: the select and the client's preferences. */
interface RoundShape {
  selectCsv: string;
  minimal: boolean;
  pageSize: number;
}

type FullRoundToken = Extract<GraphToken, { k: 'df' }>;
type ChangeRoundToken = Extract<GraphToken, { k: 'dc' }>;

/**
 * `/users/delta`: a first round lists every user, later rounds replay the
 * tenant's change log from the delta link's sequence number. Everything a
 * round needs travels in its tokens.
 */
export function registerDeltaRoutes(app: FastifyInstance, ctx: EmulatorContext, auth: GraphAuthenticator): void {
  const delta = new DeltaRounds(ctx);
  app.get('/v1.0/users/delta', async (request, reply) => {
    const tenant = (await authenticateUserReader(auth, request)).tenant;
    const options = queryOptions(request);
    const skiptoken = options.get('skiptoken');
    const deltatoken = options.get('deltatoken');
    if (skiptoken !== undefined || (deltatoken !== undefined && deltatoken !== 'latest')) {
      return delta.continueRound(reply, tenant, skiptoken, deltatoken);
    }
    // First call of a round: query options and preferences are folded into the tokens from here on.
    refuseUnsupported(request, options);
    const select = selectOf(options.get('select'));
    const prefer = parsePrefer(request.headers.prefer);
    const shape: RoundShape = { selectCsv: select?.join(',') ?? '', minimal: prefer.minimal, pageSize: prefer.maxPageSize ?? DELTA_DEFAULT_PAGE };
    if (deltatoken === 'latest') return delta.sendPage(reply, tenant, shape, [], undefined, tenant.seq);
    const now = ctx.clock.nowMs();
    return delta.fullRoundPage(reply, tenant, { k: 'df', t: tenant.id, seq: tenant.seq, o: -1, s: shape.selectCsv, m: shape.minimal, n: shape.pageSize, f: tenant.deltaFloor, iat: now });
  });
}

class DeltaRounds {
  readonly #ctx: EmulatorContext;
  readonly #changeSets = new ChangeSetCache();

  constructor(ctx: EmulatorContext) {
    this.#ctx = ctx;
  }

  /** A next link (`$skiptoken`) or a delta link (`$deltatoken`) of an earlier round. */
  continueRound(reply: FastifyReply, tenant: Tenant, skiptoken: string | undefined, deltatoken: string | undefined): FastifyReply {
    const token = decodeToken((skiptoken ?? deltatoken)!);
    const kindOk = token && (skiptoken !== undefined ? token.k === 'df' || token.k === 'dc' : token.k === 'dt');
    if (!token || !kindOk || token.t !== tenant.id) throw new GraphError(400, 'Request_BadRequest', 'Badly formed token.');
    const nowMs = this.#ctx.clock.nowMs();
    switch (token.k) {
      case 'df':
        if (deltaStateExpired(tenant, token, nowMs)) throw this.#resync(token.s);
        return this.fullRoundPage(reply, tenant, token);
      case 'dc':
        if (deltaStateExpired(tenant, { seq: token.from, f: token.f, iat: token.iat }, nowMs)) throw this.#resync(token.s);
        return this.#changeRoundPage(reply, tenant, token);
      case 'dt':
        if (deltaStateExpired(tenant, token, nowMs)) throw this.#resync(token.s);
        return this.#changeRoundPage(reply, tenant, { ...token, k: 'dc', from: token.seq, to: tenant.seq, i: 0, f: tenant.deltaFloor, iat: nowMs });
      default:
        throw new GraphError(400, 'Request_BadRequest', 'Badly formed token.');
    }
  }

  fullRoundPage(reply: FastifyReply, tenant: Tenant, token: FullRoundToken): FastifyReply {
    const props = withId(selectFromToken(token.s));
    const users = tenant.users;
    const start = this.#ctx.directory.indexAfterOrdinal(tenant, token.o);
    const end = Math.min(start + token.n, users.length);
    const key = props?.join(',');
    const items: string[] = [];
    for (let i = start; i < end; i++) items.push(userJson(users[i]!, props, key));
    const next: GraphToken | undefined = end < users.length ? { ...token, o: users[end - 1]!.ordinal } : undefined;
    return this.sendPage(reply, tenant, shapeOf(token), items, next, token.seq);
  }

  /** One page of a delta round, ending with a next link or (last page) a delta link. */
  sendPage(reply: FastifyReply, tenant: Tenant, shape: RoundShape, items: string[], next: GraphToken | undefined, deltaSeq: number): FastifyReply {
    const graph = this.#ctx.urls.graph;
    const link = next
      ? `"@odata.nextLink":${JSON.stringify(`${graph}/v1.0/users/delta?$skiptoken=${encodeToken(next)}`)}`
      : `"@odata.deltaLink":${JSON.stringify(`${graph}/v1.0/users/delta?$deltatoken=${encodeToken(this.#deltaToken(tenant, shape, deltaSeq))}`)}`;
    const headers: Record<string, string> = shape.minimal ? { 'preference-applied': 'return=minimal' } : {};
    const context = JSON.stringify(usersContext(graph, selectFromToken(shape.selectCsv)));
    return sendJson(reply, `{"@odata.context":${context},${link},"value":[${items.join(',')}]}`, headers);
  }

  #deltaToken(tenant: Tenant, shape: RoundShape, seq: number): GraphToken {
    return { k: 'dt', t: tenant.id, seq, s: shape.selectCsv, m: shape.minimal, n: shape.pageSize, f: tenant.deltaFloor, iat: this.#ctx.clock.nowMs() };
  }

  #changeRoundPage(reply: FastifyReply, tenant: Tenant, token: ChangeRoundToken): FastifyReply {
    const props = withId(selectFromToken(token.s));
    const set = this.#changeSets.get(tenant, token.from, token.to);
    const end = Math.min(token.i + token.n, set.ids.length);
    const items: string[] = [];
    for (let i = token.i; i < end; i++) {
      const item = changeJson(tenant, set.ids[i]!, token.m ? set.changed.get(set.ids[i]!) : undefined, props);
      if (item !== undefined) items.push(item);
    }
    const next: GraphToken | undefined = end < set.ids.length ? { ...token, i: end } : undefined;
    return this.sendPage(reply, tenant, shapeOf(token), items, next, token.to);
  }

  #resync(selectCsv: string): GraphError {
    return syncStateNotFound(`${this.#ctx.urls.graph}/v1.0/users/delta${selectCsv ? `?$select=${selectCsv}` : ''}`);
  }
}

function shapeOf(token: FullRoundToken | ChangeRoundToken): RoundShape {
  return { selectCsv: token.s, minimal: token.m, pageSize: token.n };
}

/**
 * One changed user as delta reports it: the user (only the changed properties
 * under `return=minimal`), or `@removed` for soft-deleted and purged ones.
 */
function changeJson(tenant: Tenant, id: string, changed: ReadonlySet<GraphUserProperty> | null | undefined, props: ReturnType<typeof withId>): string | undefined {
  const active = tenant.usersById.get(id);
  if (active) {
    if (!changed) return userJson(active, props);
    const minimalProps = (props ?? DEFAULT_USER_SELECT).filter((p) => p === 'id' || changed.has(p));
    return serializerFor(minimalProps)(active.props);
  }
  if (tenant.deletedUsers.has(id)) return removedJson(id, 'changed');
  if (tenant.purgedUserIds.has(id)) return removedJson(id, 'deleted');
  return undefined;
}

function removedJson(id: string, reason: 'changed' | 'deleted'): string {
  return `{"id":${JSON.stringify(id)},"@removed":{"reason":"${reason}"}}`;
}
