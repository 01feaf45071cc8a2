import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import type { Pages, PageServices } from '../context.ts';
import { explainGroupSyncHealth, explainSyncHealth } from '../explain.ts';
import { viewerActor } from '../actor.ts';
import { viewerOf } from '../guards.ts';
import type { PagePlugin } from '../plugins.ts';
import { formBody, HeldDecisionBody } from '../schemas.ts';
import { SyncWatch, syncSnapshot } from '../sync-watch.ts';
import type { ViewerSource } from '../viewer.ts';

const RUNS_SHOWN = 20;
const SyncBody = formBody({ full: Type.Optional(Type.Enum(['1'])) });

export interface SyncRouteOptions {
  pages: Pages;
  syncStatus: PageServices['syncStatus'];
  sync: PageServices['sync'];
  /** Held decisions go through the operator actions, so an admin's decision is audited like an operator's. */
  actions: PageServices['actions'];
  viewers: ViewerSource;
  /** How often an open progress stream re-checks its session (it ends when the session does). */
  streamCheckMs: number;
}

/** The sync page, "Sync now", the live progress stream and held deletions. */
export const syncRoutes: PagePlugin<SyncRouteOptions> = async (app, { pages, syncStatus, sync, actions, viewers, streamCheckMs }) => {
  const watch = new SyncWatch(syncStatus, pages.now);
  app.addHook('onClose', async () => watch.close());

  app.get('/app/sync', { preHandler: pages.guard('member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const [snapshot, runs, groups, liveUpdates] = await Promise.all([
      syncSnapshot(syncStatus, viewer.tenant.id, pages.now()),
      syncStatus.runs(viewer.tenant.id, RUNS_SHOWN),
      syncStatus.groupStatus(viewer.tenant.id),
      syncStatus.liveUpdates(viewer.tenant.id, pages.now()),
    ]);
    return pages.render(reply, 'sync', {
      title: 'Directory sync',
      wide: true,
      script: 'sync.js',
      snapshot,
      runs,
      liveUpdates,
      problem: explainSyncHealth(snapshot.health, snapshot.lastError),
      groups,
      groupProblem: explainGroupSyncHealth(groups.health, groups.lastError),
    });
  });

  app.post(
    '/app/sync',
    { schema: { body: SyncBody }, preHandler: pages.guard('admin'), config: { rateLimit: { max: 20, timeWindow: '1 minute' } } },
    async (request, reply) => {
      const viewer = viewerOf(request);
      const snapshot = await syncSnapshot(syncStatus, viewer.tenant.id, pages.now());
      if (snapshot.state === 'held') {
        return pages.message(request, reply, 409, { title: 'A decision is waiting', message: 'The last sync would remove many users and is waiting for a decision.', next: 'Confirm or discard the removal on the sync page first.', links: [{ href: '/app/sync', label: 'Back to sync', primary: true }] });
      }
      const full = request.body.full === '1';
      if (snapshot.state !== 'running') {
        await syncStatus.request(viewer.tenant.id, pages.now());
        sync.requestSync(viewer.tenant.id, { full });
        request.log.info({ tenant: viewer.tenant.id, by: viewer.user.id, full }, 'sync requested');
      }
      return reply.redirect('/app/sync', 303);
    },
  );

  app.get('/app/sync/events', { sse: 'dual', preHandler: pages.guard('member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const first = await syncSnapshot(syncStatus, viewer.tenant.id, pages.now());
    // Without an event-stream Accept header, one snapshot as JSON (for scripts and polling).
    if (!reply.sse) return reply.send(first);
    const sse = reply.sse;
    sse.keepAlive();
    await sse.send({ event: 'sync', data: first });
    const stop = watch.watch(viewer.tenant.id, (snapshot) => {
      if (sse.isConnected) void sse.send({ event: 'sync', data: snapshot }).catch(() => stop());
    });
    const ended = endWithSession(sse, viewers, viewer.sessionId, streamCheckMs);
    sse.onClose(() => {
      ended();
      stop();
    });
  });

  app.post('/app/sync/held', { schema: { body: HeldDecisionBody }, preHandler: pages.guard('admin') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const snapshot = await syncSnapshot(syncStatus, viewer.tenant.id, pages.now());
    if (snapshot.state !== 'held') return reply.redirect('/app/sync', 303);
    const { removed } = await actions.decideHeld(viewer.tenant.id, request.body.decision, viewerActor(request));
    request.log.warn({ tenant: viewer.tenant.id, by: viewer.user.id, ...(removed === null ? {} : { removed }) }, `held mass deletion ${request.body.decision === 'confirm' ? 'confirmed' : 'discarded'}`);
    return reply.redirect('/app/sync', 303);
  });
};

/**
 * The stream is part of the session: sign-out, expiry, or the user or tenant
 * losing access ends it. Returns what stops the checks.
 */
function endWithSession(sse: NonNullable<FastifyReply['sse']>, viewers: ViewerSource, sessionId: string, everyMs: number): () => void {
  const check = setInterval(() => {
    void viewers.resume(sessionId, { touch: false }).then(
      async (current) => {
        if (current || !sse.isConnected) return;
        await sse.send({ event: 'signed-out', data: {} }).catch(() => {});
        sse.close();
      },
      () => {},
    );
  }, everyMs);
  check.unref();
  return () => clearInterval(check);
}
