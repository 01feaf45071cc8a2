import type { FastifyInstance } from 'fastify';
import type { WebContext } from '../context.ts';
import { explainSyncHealth } from '../explain.ts';
import { guard, viewerOf } from '../guards.ts';
import { formBody } from '../schemas.ts';

export function registerOrganisationRoutes(app: FastifyInstance, ctx: WebContext): void {
  app.get('/app/organisation', { preHandler: guard(ctx, 'member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const [status, admins] = await Promise.all([ctx.syncStatus.status(viewer.tenant.id), ctx.users.admins(viewer.tenant.id)]);
    const plan = typeof viewer.tenant.signupContext?.plan === 'string' ? viewer.tenant.signupContext.plan : 'team';
    return ctx.render(reply, 'organisation', { title: 'Organisation', tenant: viewer.tenant, status, admins, plan, problem: explainSyncHealth(status.health, status.lastError) });
  });

  app.post<{ Body: { _csrf?: string; confirmName: string } }>(
    '/app/organisation/leave',
    {
      schema: { body: formBody({ confirmName: { type: 'string', maxLength: 512 } }, ['confirmName'] as const) },
      preHandler: guard(ctx, 'admin'),
    },
    async (request, reply) => {
      const viewer = viewerOf(request);
      const typed = request.body.confirmName.trim().toLocaleLowerCase();
      if (typed !== viewer.tenant.displayName.trim().toLocaleLowerCase()) {
        return ctx.message(request, reply, 400, {
          title: 'Organisation name did not match',
          message: 'To leave Roster, type your organisation\'s name exactly as shown. Nothing was changed.',
          links: [{ href: '/app/organisation', label: 'Back to the organisation page', primary: true }],
        });
      }
      const result = await ctx.lifecycle.offboard(viewer.tenant.id, `left Roster (by ${viewer.user.id})`, ctx.now());
      request.log.warn({ tenant: viewer.tenant.id, by: viewer.user.id, ...result }, 'organisation offboarded');
      reply.clearCookie(ctx.cookieNames.session, { path: '/' });
      request.viewer = null;
      return ctx.message(request, reply, 200, {
        title: 'Your organisation has left Roster',
        tone: 'ok',
        message: `${viewer.tenant.displayName} is no longer signed up. Roster deleted its copy of ${result.users.toLocaleString('en-GB')} users and ${result.runs.toLocaleString('en-GB')} sync records, and signed everyone out.`,
        next: 'To remove Roster\'s access in Microsoft as well, delete Roster under Enterprise applications in the Microsoft Entra admin center. You can sign up again at any time.',
        links: [{ href: '/', label: 'Home', primary: true }],
      });
    },
  );
}
