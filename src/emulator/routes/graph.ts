import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { GraphAuthenticator } from '../graph-auth.ts';
import { registerApplicationRoutes } from './graph/applications.ts';
import { registerDeltaRoutes } from './graph/delta.ts';
import { registerGroupDeltaRoutes } from './graph/group-delta.ts';
import { registerGroupRoutes } from './graph/groups.ts';
import { registerOrganizationRoutes } from './graph/organization.ts';
import { registerSubscriptionRoutes } from './graph/subscriptions.ts';
import { registerUserRoutes } from './graph/users.ts';

/** Microsoft Graph v1.0: users, groups, their deltas, deleted users, the organization and subscriptions; one token check shared by all. */
export function registerGraphRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  const auth = new GraphAuthenticator(ctx);
  registerUserRoutes(app, ctx, auth);
  registerDeltaRoutes(app, ctx, auth);
  registerGroupDeltaRoutes(app, ctx, auth);
  registerGroupRoutes(app, ctx, auth);
  registerApplicationRoutes(app, ctx, auth);
  registerOrganizationRoutes(app, ctx, auth);
  registerSubscriptionRoutes(app, ctx, auth);
}
