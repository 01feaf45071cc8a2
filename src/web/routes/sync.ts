import type { FastifyInstance } from 'fastify';
import type { WebContext } from '../context.ts';
import { guard, viewerOf } from '../guards.ts';
import { formBody, heldDecisionBody } from '../schemas.ts';
import { SyncWatch, syncSnapshot } from '../sync-watch.ts';
import { explainSyncHealth } from '../explain.ts';

const RUNS_SHOWN = 20;

export function registerSyncRoutes(app: FastifyInstance, ctx: WebContext): void {
  const watch = new SyncWatch(ctx.syncStatus, ctx.now);
  app.addHook('onClose', async () => watch.close());

  app.get('/app/sync', { preHandler: guard(ctx, 'member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const [snapshot, runs] = await Promise.all([syncSnapshot(ctx.syncStatus, viewer.tenant.id, ctx.now()), ctx.syncStatus.runs(viewer.tenant.id, RUNS_SHOWN)]);
    return ctx.render(reply, 'sync', { title: 'Directory sync', wide: true, script: 'sync.js', snapshot, runs, problem: explainSyncHealth(snapshot.health, snapshot.lastError) });
  });

  app.post<{ Body: { _csrf?: string; full?: string } }>(
    '/app/sync',
    { schema: { body: formBody({ full: { type: 'string', enum: ['1'] } }) }, preHandler: guard(ctx, 'admin'), config: { rateLimit: { max: 20, timeWindow: '1 minute' } } },
    async (request, reply) => {
      const viewer = viewerOf(request);
      const snapshot = await syncSnapshot(ctx.syncStatus, viewer.tenant.id, ctx.now());
      if (snapshot.state === 'held') {
        return ctx.message(request, reply, 409, { title: 'A decision is waiting', message: 'The last sync would remove many users and is waiting for a decision.', next: 'Confirm or discard the removal on the sync page first.', links: [{ href: '/app/sync', label: 'Back to sync', primary: true }] });
      }
      if (snapshot.state !== 'running') {
        await ctx.syncStatus.request(viewer.tenant.id, ctx.now());
        ctx.sync.requestSync(viewer.tenant.id, { full: request.body?.full === '1' });
        request.log.info({ tenant: viewer.tenant.id, by: viewer.user.id, full: request.body?.full === '1' }, 'sync requested');
      }
      return reply.redirect('/app/sync', 303);
    },
  );

  app.get('/app/sync/events', { sse: 'dual', preHandler: guard(ctx, 'member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const first = await syncSnapshot(ctx.syncStatus, viewer.tenant.id, ctx.now());
    // Without an event-stream Accept header, one snapshot as JSON (for scripts and polling).
    if (!reply.sse) return reply.header('cache-control', 'no-store').send(first);
    const sse = reply.sse;
    sse.keepAlive();
    await sse.send({ event: 'sync', data: first });
    const stop = watch.watch(viewer.tenant.id, (snapshot) => {
      if (sse.isConnected) void sse.send({ event: 'sync', data: snapshot }).catch(() => stop());
    });
    sse.onClose(stop);
  });

  app.post<{ Body: { _csrf?: string; decision: 'confirm' | 'discard' } }>(
    '/app/sync/held',
    { schema: { body: heldDecisionBody }, preHandler: guard(ctx, 'admin') },
    async (request, reply) => {
      const viewer = viewerOf(request);
      const snapshot = await syncSnapshot(ctx.syncStatus, viewer.tenant.id, ctx.now());
      if (snapshot.state !== 'held') return reply.redirect('/app/sync', 303);
      if (request.body.decision === 'confirm') {
        const removed = await ctx.sync.confirmHeldDeletion(viewer.tenant.id);
        request.log.warn({ tenant: viewer.tenant.id, by: viewer.user.id, removed }, 'held mass deletion confirmed');
      } else {
        await ctx.sync.discardHeldDeletion(viewer.tenant.id);
        request.log.warn({ tenant: viewer.tenant.id, by: viewer.user.id }, 'held mass deletion discarded');
      }
      return reply.redirect('/app/sync', 303);
    },
  );
}
