import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { Access, Pages, Viewer } from './context.ts';

/**
 * Who may do what, checked on the server for every request: pages need a
 * session; admin actions need Roster's own admin role in the viewer's tenant;
 * the operator console needs an OPERATORS entry. Every non-GET also needs the
 * session's CSRF token (the Sec-Fetch-Site check in app.ts comes first).
 */
export function guard(pages: Pick<Pages, 'message'>, access: Access): preHandlerAsyncHookHandler {
  return async function checkAccess(request: FastifyRequest, reply: FastifyReply) {
    const viewer = request.viewer;
    if (!viewer) {
      if (request.method === 'GET') return reply.redirect(`/signin?returnTo=${encodeURIComponent(request.url)}`, 303);
      return pages.message(request, reply, 401, { title: 'Signed out', message: 'Your session has ended, so nothing was changed.', next: 'Sign in and try again.', links: [{ href: '/signin', label: 'Sign in', primary: true }] });
    }
    if (!allowed(viewer, access)) {
      request.log.info({ tenant: viewer.tenant.id, user: viewer.user.id, access, url: request.routeOptions.url }, 'access refused');
      return pages.message(request, reply, 403, {
        title: access === 'operator' ? 'Operators only' : 'Administrators only',
        message: access === 'operator' ? 'This part of Roster is for the people who run it.' : `Only Roster administrators of ${viewer.tenantName} can do this.`,
        next: access === 'operator' ? 'Go back to your organisation\'s pages.' : 'Ask one of your organisation\'s Roster administrators (listed on the Organisation page).',
        links: [{ href: '/app', label: 'Back to Roster', primary: true }],
      });
    }
    if (request.method !== 'GET' && request.method !== 'HEAD' && csrfToken(request) !== viewer.csrfToken) {
      return pages.message(request, reply, 403, { title: 'Request refused', message: 'The form you sent was stale or did not come from Roster, so nothing was changed.', next: 'Reload the page and try again.' });
    }
  };
}

function allowed(viewer: Viewer, access: Access): boolean {
  if (access === 'operator') return viewer.isOperator;
  if (access === 'admin') return viewer.isAdmin;
  return true;
}

/** The form's `_csrf` field; any body that is not a form has none. */
function csrfToken(request: FastifyRequest): unknown {
  const body: unknown = request.body;
  return typeof body === 'object' && body !== null && '_csrf' in body ? body._csrf : undefined;
}

/** The viewer a guarded handler runs for (the guard already refused anyone else). */
export function viewerOf(request: FastifyRequest): Viewer {
  if (!request.viewer) throw new Error('guarded route reached without a viewer');
  return request.viewer;
}
