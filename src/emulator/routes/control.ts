import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { registerAppControl } from './control/apps.ts';
import { registerDirectoryControl } from './control/directory.ts';
import { registerScenarioControl } from './control/scenario.ts';
import { registerSubscriptionControl } from './control/subscriptions.ts';
import { appSummary, sameSecret, settingsView, tenantSummary } from './control/shared.ts';

/**
 * The control API (`/_emulator/...` on the pages listener): drives scenarios in
 * a running emulator. Every route needs `Authorization: Bearer <control token>`.
 */
export function registerControlRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  app.register(
    async (scope) => {
      scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
        const header = request.headers.authorization ?? '';
        const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
        if (!token || !sameSecret(token, ctx.controlToken)) {
          return reply
            .code(401)
            .header('www-authenticate', 'Bearer realm="roster-emulator-control"')
            .send({ error: { code: 'Unauthorized', message: 'the control API needs Authorization: Bearer <control token> (printed at start, and in <data dir>/control.json)' } });
        }
      });

      const d = ctx.directory;
      scope.get('/state', async () => ({
        demoAppId: ctx.demoAppId,
        tenants: [...d.tenants.values()].map((t) => tenantSummary(ctx, t)),
        apps: [...d.apps.values()].map(appSummary),
        settings: settingsView(ctx),
        signingKeys: { current: ctx.keyring.currentKid, kids: ctx.keyring.kids },
        urls: ctx.urls,
      }));

      registerDirectoryControl(scope, ctx);
      registerAppControl(scope, ctx);
      registerScenarioControl(scope, ctx);
      registerSubscriptionControl(scope, ctx);
    },
    { prefix: '/_emulator' },
  );
}
