import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { ValidatedIdentity } from '../identity/id-token.ts';
import { randomToken } from '../store/tokens.ts';
import type { WebContext } from './context.ts';

/** What the sign-in and sign-up routes are handed: the identity provider, the repositories they write, the pages kit. */
export type SignInServices = Pick<
  WebContext,
  'publicUrl' | 'secureCookies' | 'cookieNames' | 'entra' | 'validator' | 'onboarding' | 'tenants' | 'users' | 'sessions' | 'authRequests' | 'sync' | 'render' | 'message' | 'now' | 'browserBinding' | 'groupRoles'
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

/** What the identity provider sends back to either callback besides its result: the `state`, or an error. */
export const providerAnswerFields = {
  state: Type.Optional(Type.String({ maxLength: 512 })),
  error: Type.Optional(Type.String({ maxLength: 256 })),
  error_description: Type.Optional(Type.String({ maxLength: 4096 })),
  error_subcode: Type.Optional(Type.String({ maxLength: 256 })),
};

/**
 * Redirects to the identity provider for a sign-in (code flow, PKCE S256,
 * nonce) whose single-use `state` is bound to this browser and carries
 * `returnTo` and `context` to the callback.
 */
export async function redirectToSignIn(
  ctx: SignInServices,
  request: FastifyRequest,
  reply: FastifyReply,
  flow: { returnTo: string | null; context: Record<string, unknown> | null; prompt?: string },
): Promise<FastifyReply> {
  const binding = ctx.browserBinding(request, reply);
  const pkce = await ctx.entra.newPkcePair();
  const nonce = randomToken();
  const state = await ctx.authRequests.create({ kind: 'signin', browserBinding: binding, nonce, codeVerifier: pkce.verifier, returnTo: flow.returnTo, context: flow.context }, ctx.now());
  const redirectUri = new URL('/auth/callback', ctx.publicUrl).href;
  return reply.redirect(await ctx.entra.signInUrl({ redirectUri, state, nonce, codeChallenge: pkce.challenge, ...(flow.prompt ? { prompt: flow.prompt } : {}) }), 303);
}
