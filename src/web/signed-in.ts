import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ValidatedIdentity } from '../identity/id-token.ts';
import type { WebContext } from './context.ts';

/** What Roster keeps of a validated sign-in between the steps of a flow (no raw token, no claims bag). */
export type SignedInPerson = Pick<ValidatedIdentity, 'tenantId' | 'objectId' | 'name' | 'preferredUsername' | 'email' | 'loginHint' | 'directoryRoles'>;

export function personOf(identity: ValidatedIdentity): SignedInPerson {
  const { tenantId, objectId, name, preferredUsername, email, loginHint, directoryRoles } = identity;
  return { tenantId, objectId, name, preferredUsername, email, loginHint, directoryRoles };
}

/** Records the person's sign-in and starts a brand-new session for them (any session the browser had ends). */
export async function openSession(ctx: WebContext, request: FastifyRequest, reply: FastifyReply, person: SignedInPerson): Promise<void> {
  await ctx.users.recordSignIn(
    { tenantId: person.tenantId, objectId: person.objectId, displayName: person.name, username: person.preferredUsername, email: person.email },
    ctx.now(),
  );
  const previous = request.cookies[ctx.cookieNames.session];
  if (previous) await ctx.sessions.destroy(previous);
  const { id } = await ctx.sessions.create(person.tenantId, person.objectId, ctx.now(), person.loginHint, person.directoryRoles);
  reply.setCookie(ctx.cookieNames.session, id, { path: '/', httpOnly: true, sameSite: 'lax', secure: ctx.secureCookies });
}
