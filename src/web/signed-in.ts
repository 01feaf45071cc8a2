import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ValidatedIdentity } from '../identity/id-token.ts';
import type { WebContext } from './context.ts';

/** What the sign-in and sign-up routes are handed: the identity provider, the repositories they write, the pages kit. */
export type SignInServices = Pick<
  WebContext,
  'publicUrl' | 'secureCookies' | 'cookieNames' | 'entra' | 'validator' | 'onboarding' | 'tenants' | 'users' | 'sessions' | 'authRequests' | 'sync' | 'render' | 'message' | 'now' | 'browserBinding'
>;

/** What Roster keeps of a validated sign-in between the steps of a flow (no raw token, no claims bag). */
export type SignedInPerson = Pick<ValidatedIdentity, 'tenantId' | 'objectId' | 'name' | 'preferredUsername' | 'email' | 'loginHint' | 'directoryRoles'>;

export function personOf(identity: ValidatedIdentity): SignedInPerson {
  const { tenantId, objectId, name, preferredUsername, email, loginHint, directoryRoles } = identity;
  return { tenantId, objectId, name, preferredUsername, email, loginHint, directoryRoles };
}

/** Records the person's sign-in and starts a brand-new session for them (any session the browser had ends); returns its CSRF token. */
export async function openSession(ctx: SignInServices, request: FastifyRequest, reply: FastifyReply, person: SignedInPerson): Promise<string> {
  await ctx.users.recordSignIn(
    { tenantId: person.tenantId, objectId: person.objectId, displayName: person.name, username: person.preferredUsername, email: person.email },
    ctx.now(),
  );
  const previous = request.cookies[ctx.cookieNames.session];
  if (previous) await ctx.sessions.destroy(previous);
  const { id, session } = await ctx.sessions.create(person.tenantId, person.objectId, ctx.now(), person.loginHint, person.directoryRoles);
  reply.setCookie(ctx.cookieNames.session, id, { path: '/', httpOnly: true, sameSite: 'lax', secure: ctx.secureCookies });
  return session.csrfToken;
}
