import type { FastifyRequest } from 'fastify';
import type { AuditActor } from '../store/audit.ts';
import { viewerOf } from './guards.ts';

/** The audit log's "who" for a page action: the signed-in person by `tid:oid`, from the client's address. */
export function viewerActor(request: FastifyRequest): AuditActor {
  const viewer = viewerOf(request);
  return { kind: 'user', id: `${viewer.tenant.id}:${viewer.user.id}`, name: viewer.name, source: request.ip };
}
