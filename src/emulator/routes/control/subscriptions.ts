import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { EmulatorContext } from '../../context.ts';
import { subscriptionJson, type Subscription } from '../../subscriptions.ts';
import { parse, type Params } from './shared.ts';

const lifecycleSchema = z.strictObject({ event: z.enum(['reauthorizationRequired']).default('reauthorizationRequired') });
const listQuerySchema = z.strictObject({ tenant: z.string().optional() });

/** Change-notification subscriptions as a scenario sees them, and lifecycle events on command. */
export function registerSubscriptionControl(scope: FastifyInstance, ctx: EmulatorContext): void {
  scope.get('/subscriptions', async (request) => {
    const query = parse(listQuerySchema, request.query);
    const tenant = query.tenant ? ctx.directory.requireTenant(query.tenant).id : undefined;
    return { subscriptions: ctx.subscriptions.all().filter((s) => !tenant || s.tenantId === tenant).map((s) => controlView(ctx, s)) };
  });

  scope.post('/subscriptions/:id/lifecycle', async (request) => {
    const id = (request.params as Params).id!;
    const body = parse(lifecycleSchema, request.body);
    const outcome = await ctx.subscriptions.requireReauthorization(id);
    return { id, event: body.event, ...outcome };
  });
}

function controlView(ctx: EmulatorContext, subscription: Subscription) {
  return {
    ...subscriptionJson(subscription),
    tenantId: subscription.tenantId,
    expired: subscription.expiresAtMs <= ctx.clock.nowMs(),
    reauthorizationRequired: subscription.reauthorizationRequired,
    stats: { ...subscription.stats },
  };
}
