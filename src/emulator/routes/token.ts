import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../context.ts';

export function registerTokenRoutes(_app: FastifyInstance, _ctx: EmulatorContext): void {
  // not built yet
}
