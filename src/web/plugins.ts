import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pages, PageServices } from './context.ts';

export type { Access, Pages, Viewer } from './context.ts';
export { viewerOf } from './guards.ts';
export { formBody, GuidIdParams } from './schemas.ts';

/**
 * A group of routes as an encapsulated Fastify plugin: registered by the app,
 * handed only the repositories and services it needs, its request schemas
 * written with TypeBox so validation and the handler's types come from one
 * definition. The session hook, the same-origin check and the page error
 * handler are the app's, so they cover every plugin alike.
 */
export type PagePlugin<Options extends object> = FastifyPluginAsyncTypebox<Options>;

/** What a product built on Roster hands its own page plugins: the pages kit and the directory, read-only. */
export interface ExtensionOptions {
  pages: Pages;
  tenants: PageServices['tenants'];
  users: PageServices['users'];
  syncStatus: PageServices['syncStatus'];
}

/** A product's own pages, given to `buildWebApp` through `WebDependencies.plugins`. */
export interface WebExtension {
  plugin: PagePlugin<ExtensionOptions>;
  /** Path prefix of every route in the plugin, e.g. `/app/team`. */
  prefix?: string;
}
