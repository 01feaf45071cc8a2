import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { GraphAuthenticator } from '../graph-auth.ts';
import { registerDeltaRoutes } from './graph/delta.ts';
import { registerOrganizationRoutes } from './graph/organization.ts';
import { registerSubscriptionRoutes } from './graph/subscriptions.ts';
import { registerUserRoutes } from './graph/users.ts';

/** Microsoft Graph v1.0: users, their delta, deleted users, the organization and subscriptions; one token check shared by all. */
export function registerGraphRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  const auth = new GraphAuthenticator(ctx);
  registerUserRoutes(app, ctx, auth);
  registerDeltaRoutes(app, ctx, auth);
  registerOrganizationRoutes(app, ctx, auth);
  registerSubscriptionRoutes(app, ctx, auth);
}
