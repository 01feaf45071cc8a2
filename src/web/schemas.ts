/** Request schemas several routes share (Fastify validates each request against them before the handler runs). */

export const GUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

/** `/:id` where the id is a GUID (a tenant or a user object id). */
export const guidIdParams = { type: 'object', properties: { id: { type: 'string', pattern: GUID_PATTERN } }, required: ['id'] } as const;

/** A signed-in form's body: its fields plus the session's CSRF token (which `guard` checks). */
export function formBody<P extends Record<string, object>, R extends readonly (keyof P & string)[] = []>(properties: P, required?: R) {
  return { type: 'object', properties: { _csrf: { type: 'string', maxLength: 128 }, ...properties }, ...(required ? { required } : {}) } as const;
}

/** Confirm or discard a held mass deletion (the sync page and the operator console). */
export const heldDecisionBody = formBody({ decision: { type: 'string', enum: ['confirm', 'discard'] } }, ['decision'] as const);
