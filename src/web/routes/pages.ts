import type { FastifyInstance } from 'fastify';
import type { WebContext } from '../context.ts';

export function registerPageRoutes(app: FastifyInstance, ctx: WebContext): void {
  app.get('/', async (_request, reply) => ctx.render(reply, 'home', { title: 'Directory sync for Microsoft Entra ID organisations' }));

  app.get('/app', async (request, reply) => {
    const viewer = request.viewer;
    if (!viewer) return reply.redirect(`/signin?returnTo=${encodeURIComponent('/app')}`, 303);
    return ctx.render(reply, 'app', { title: viewer.tenantName, user: viewer.user, tenant: viewer.tenant });
  });
}
