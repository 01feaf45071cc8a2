import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../context.ts';

export function registerAuthorizeRoutes(_app: FastifyInstance, _ctx: EmulatorContext): void {
  // not built yet
}
