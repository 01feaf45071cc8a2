import { Type, type TProperties } from 'typebox';

/**
 * Request schemas several routes share, written with TypeBox: one definition
 * gives Fastify the JSON Schema it validates against and the handler its
 * TypeScript types (and can later give an OpenAPI document).
 */

export const GUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

/** `/:id` where the id is a GUID (a tenant or a user object id). */
export const GuidIdParams = Type.Object({ id: Type.String({ pattern: GUID_PATTERN }) });

/** A signed-in form's body: its fields plus the session's CSRF token (which `guard` checks). */
export function formBody<P extends TProperties>(properties: P) {
  return Type.Object({ _csrf: Type.Optional(Type.String({ maxLength: 128 })), ...properties });
}

/** Confirm or discard a held mass deletion (the sync page and the operator console). */
export const HeldDecisionBody = formBody({ decision: Type.Enum(['confirm', 'discard']) });
