import { join } from 'node:path';
import { Eta } from 'eta';
import { Type } from 'typebox';
import { formBody, viewerOf, type ExtensionOptions, type PagePlugin, type WebExtension } from '../../src/web/plugins.ts';

/** How many of the organisation's users the page lists (a real product would page, as /app/users does). */
const LISTED = 500;

const NO_DEPARTMENT = 'No department';
const HighlightBody = formBody({ department: Type.String({ minLength: 1, maxLength: 128 }) });

/**
 * An example of a product's own page on Roster: the signed-in organisation's
 * people by department, for every member; admins pick a department to show
 * first. It reads the directory only through Roster's repositories, and the
 * tenant always comes from the session, never from the request.
 */
export const teamDirectoryPlugin: PagePlugin<ExtensionOptions> = async (app, { pages, users }) => {
  const eta = new Eta({ views: join(import.meta.dirname, 'views'), autoEscape: true, cache: true });
  // Kept in memory to keep the example small; a product would store it in its own table.
  const highlighted = new Map<string, string>();

  app.get('/', { preHandler: pages.guard('member') }, async (request, reply) => {
    const viewer = viewerOf(request);
    const { users: people, total } = await users.search(viewer.tenant.id, { search: '', state: 'active', sort: 'department', descending: false }, { offset: 0, limit: LISTED });
    const byDepartment = new Map<string, typeof people>();
    for (const person of people) {
      const department = person.department ?? NO_DEPARTMENT;
      byDepartment.set(department, [...(byDepartment.get(department) ?? []), person]);
    }
    const first = highlighted.get(viewer.tenant.id);
    // The highlighted department first, then A to Z, people without one last; people by name within each.
    const rank = (department: string) => (department === first ? 0 : department === NO_DEPARTMENT ? 2 : 1);
    const departments = [...byDepartment]
      .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
      .map(([department, members]) => [department, members.sort((x, y) => (x.displayName ?? '').localeCompare(y.displayName ?? ''))] as const);
    const html = eta.render('team', { departments, highlighted: first, total, listed: people.length, isAdmin: viewer.isAdmin, csrfToken: viewer.csrfToken });
    return pages.page(reply, { title: 'Team directory', html, wide: true });
  });

  app.post('/highlight', { schema: { body: HighlightBody }, preHandler: pages.guard('admin') }, async (request, reply) => {
    const viewer = viewerOf(request);
    highlighted.set(viewer.tenant.id, request.body.department);
    request.log.info({ tenant: viewer.tenant.id, by: viewer.user.id }, 'team directory highlight changed');
    return reply.redirect('/app/team', 303);
  });
};

/** What `buildWebApp` takes: `buildWebApp({ ...deps, plugins: [teamDirectory] })`. */
export const teamDirectory: WebExtension = { plugin: teamDirectoryPlugin, prefix: '/app/team' };
