import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { GraphAuthenticator } from '../graph-auth.ts';
import { registerDeltaRoutes } from './graph/delta.ts';
import { registerGroupDeltaRoutes } from './graph/group-delta.ts';
import { registerGroupRoutes } from './graph/groups.ts';
import { registerOrganizationRoutes } from './graph/organization.ts';
import { registerUserRoutes } from './graph/users.ts';

/** Microsoft Graph v1.0: users, groups, their deltas, deleted users and the organization; one token check shared by all. */
export function registerGraphRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  const auth = new GraphAuthenticator(ctx);
  registerUserRoutes(app, ctx, auth);
  registerDeltaRoutes(app, ctx, auth);
  registerGroupDeltaRoutes(app, ctx, auth);
  registerGroupRoutes(app, ctx, auth);
  registerOrganizationRoutes(app, ctx, auth);
}
