import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../context.ts';

export function registerGraphRoutes(_app: FastifyInstance, _ctx: EmulatorContext): void {
  // not built yet
}
