import type { FastifyInstance, FastifyReply } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import { GraphError } from '../../errors.ts';
import type { GraphAuthenticator } from '../../graph-auth.ts';
import { decodeToken, deltaStateExpired, encodeToken, syncStateNotFound, type GraphToken } from '../../graph-delta.ts';
import { GroupRoundCache, groupRoundPage, groupsContext, groupSelectCsv, parseGroupSelect, type GroupPageShape, type GroupSelect } from '../../graph-groups.ts';
import type { Tenant } from '../../model.ts';
import { authenticateGroupReader, parsePrefer, queryOptions, refuseUnsupported, sendJson } from './http.ts';

/** Groups per delta page when the client sends no `Prefer: odata.maxpagesize`. */
const GROUP_DELTA_DEFAULT_PAGE = 100;

type RoundToken = Extract<GraphToken, { k: 'gr' }>;

/**
 * `/groups/delta`: a first round lists every group with its direct members in
 * `members@delta`, later rounds replay the group change log from the delta
 * link's sequence number. Query options go on the first request only and
 * travel in the tokens from then on.
 */
export function registerGroupDeltaRoutes(app: FastifyInstance, ctx: EmulatorContext, auth: GraphAuthenticator): void {
  const rounds = new GroupRoundCache();

  app.get('/v1.0/groups/delta', async (request, reply) => {
    const tenant = (await authenticateGroupReader(auth, request)).tenant;
    const options = queryOptions(request);
    const skiptoken = options.get('skiptoken');
    const deltatoken = options.get('deltatoken');
    const nowMs = ctx.clock.nowMs();
    if (skiptoken !== undefined || (deltatoken !== undefined && deltatoken !== 'latest')) {
      const token = decodeToken((skiptoken ?? deltatoken)!);
      const kindOk = token && (skiptoken !== undefined ? token.k === 'gr' : token.k === 'gt');
      if (!token || !kindOk || token.t !== tenant.id) throw new GraphError(400, 'Request_BadRequest', 'Badly formed token.');
      if (token.k === 'gr') {
        if (deltaStateExpired(tenant, { seq: token.from < 0 ? token.to : token.from, f: token.f, iat: token.iat }, nowMs)) throw resync(ctx, token.s);
        return sendRoundPage(reply, tenant, token);
      }
      if (token.k !== 'gt') throw new GraphError(400, 'Request_BadRequest', 'Badly formed token.');
      if (deltaStateExpired(tenant, token, nowMs)) throw resync(ctx, token.s);
      return sendRoundPage(reply, tenant, { ...token, k: 'gr', from: token.seq, to: tenant.seq, p: 0, f: tenant.deltaFloor, iat: nowMs });
    }
    refuseUnsupported(request, options);
    const select = groupSelectOf(options.get('select'));
    const prefer = parsePrefer(request.headers.prefer);
    const base = { t: tenant.id, s: groupSelectCsv(select), m: prefer.minimal, n: prefer.maxPageSize ?? GROUP_DELTA_DEFAULT_PAGE, f: tenant.deltaFloor, iat: nowMs };
    if (deltatoken === 'latest') return sendPage(reply, shapeOf(base), [], undefined, { k: 'gt', ...base, seq: tenant.seq });
    return sendRoundPage(reply, tenant, { k: 'gr', ...base, from: -1, to: tenant.seq, p: 0 });
  });

  function sendRoundPage(reply: FastifyReply, tenant: Tenant, token: RoundToken): FastifyReply {
    const shape = shapeOf(token);
    const round = rounds.get(tenant, token.from, token.to, shape.select.members);
    const page = groupRoundPage(tenant, round, token.p, shape);
    const next: GraphToken | undefined = page.next < round.unitGroup.length ? { ...token, p: page.next } : undefined;
    const link: GraphToken = next ?? { k: 'gt', t: tenant.id, seq: token.to, s: token.s, m: token.m, n: token.n, f: tenant.deltaFloor, iat: ctx.clock.nowMs() };
    return sendPage(reply, shape, page.items, next, link);
  }

  function sendPage(reply: FastifyReply, shape: GroupPageShape, items: string[], next: GraphToken | undefined, deltaLink: GraphToken): FastifyReply {
    const graph = ctx.urls.graph;
    const link = next
      ? `"@odata.nextLink":${JSON.stringify(`${graph}/v1.0/groups/delta?$skiptoken=${encodeToken(next)}`)}`
      : `"@odata.deltaLink":${JSON.stringify(`${graph}/v1.0/groups/delta?$deltatoken=${encodeToken(deltaLink)}`)}`;
    const headers: Record<string, string> = shape.minimal ? { 'preference-applied': 'return=minimal' } : {};
    const context = JSON.stringify(groupsContext(graph, shape.select.props));
    return sendJson(reply, `{"@odata.context":${context},${link},"value":[${items.join(',')}]}`, headers);
  }
}

function resync(ctx: EmulatorContext, selectCsv: string): GraphError {
  return syncStateNotFound(`${ctx.urls.graph}/v1.0/groups/delta${selectCsv ? `?$select=${selectCsv}` : ''}`);
}

function shapeOf(token: { s: string; m: boolean; n: number }): GroupPageShape {
  return { select: groupSelectOf(token.s), minimal: token.m, pageSize: token.n };
}

/** The `$select` of a groups delta; an unknown property is Graph's 400. */
function groupSelectOf(raw: string | undefined): GroupSelect {
  const parsed = parseGroupSelect(raw, true);
  if (parsed.ok) return parsed.select;
  throw new GraphError(400, 'Request_BadRequest', `Could not find a property named '${parsed.property}' on type 'microsoft.graph.group'.`);
}
