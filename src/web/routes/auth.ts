import type { FastifyInstance } from 'fastify';
import { IdTokenRejectedError, PERSONAL_ACCOUNT_TENANT_ID } from '../../identity/id-token.ts';
import { IdentityUnavailableError } from '../../identity/errors.ts';
import { randomToken } from '../../store/tokens.ts';
import type { WebContext } from '../context.ts';
import { explainSignInError } from '../explain.ts';
import { safeReturnTo } from '../return-to.ts';
import { formBody } from '../schemas.ts';

const callbackQuery = {
  type: 'object',
  properties: {
    code: { type: 'string', maxLength: 4096 },
    state: { type: 'string', maxLength: 512 },
    error: { type: 'string', maxLength: 256 },
    error_description: { type: 'string', maxLength: 4096 },
    error_subcode: { type: 'string', maxLength: 256 },
  },
} as const;

interface CallbackQuery {
  code?: string;
  state?: string;
  error?: string;
  error_description?: string;
}

const SIGN_IN_RATE = { max: 60, timeWindow: '1 minute' };

export function registerAuthRoutes(app: FastifyInstance, ctx: WebContext): void {
  const redirectUri = new URL('/auth/callback', ctx.publicUrl).href;

  app.get<{ Querystring: { returnTo?: string } }>(
    '/signin',
    {
      config: { rateLimit: SIGN_IN_RATE },
      schema: { querystring: { type: 'object', properties: { returnTo: { type: 'string', maxLength: 2048 } } } },
    },
    async (request, reply) => {
      const binding = ctx.browserBinding(request, reply);
      const pkce = await ctx.entra.newPkcePair();
      const nonce = randomToken();
      const state = await ctx.authRequests.create(
        { kind: 'signin', browserBinding: binding, nonce, codeVerifier: pkce.verifier, returnTo: safeReturnTo(request.query.returnTo), context: null },
        ctx.now(),
      );
      return reply.redirect(await ctx.entra.signInUrl({ redirectUri, state, nonce, codeChallenge: pkce.challenge }), 303);
    },
  );

  app.get<{ Querystring: CallbackQuery }>('/auth/callback', { config: { rateLimit: SIGN_IN_RATE }, schema: { querystring: callbackQuery } }, async (request, reply) => {
    // The code must not linger in the address bar or leak through Referer.
    reply.header('referrer-policy', 'no-referrer');
    const { state, code, error } = request.query;
    const binding = request.cookies[ctx.cookieNames.binding];
    const pending = state && binding ? await ctx.authRequests.take(state, 'signin', binding, ctx.now()) : undefined;
    if (!pending) {
      return ctx.message(request, reply, 400, {
        title: 'This sign-in has expired',
        message: 'The sign-in you came back from was not started in this browser, took too long, or was already used.',
        next: 'Start again from the sign-in button.',
        links: [{ href: '/signin', label: 'Sign in', primary: true }],
      });
    }
    if (error) {
      const explanation = explainSignInError(error, request.query.error_description);
      request.log.info({ error, aadsts: /AADSTS\d+/.exec(request.query.error_description ?? '')?.[0] }, 'sign-in refused by the identity provider');
      return ctx.message(request, reply, 400, { title: explanation.title, message: explanation.message, next: explanation.next, links: [{ href: '/', label: 'Home' }] });
    }
    if (!code) return ctx.message(request, reply, 400, { title: 'Sign-in incomplete', message: 'Microsoft returned no sign-in result.', next: 'Start again.', links: [{ href: '/signin', label: 'Sign in', primary: true }] });

    let identity;
    try {
      const idToken = await ctx.entra.redeemCode({ code, redirectUri, codeVerifier: pending.codeVerifier, nonce: pending.nonce });
      identity = await ctx.validator.validate(idToken, pending.nonce);
    } catch (err) {
      // Not a verdict on the sign-in: Microsoft could not be asked. The error pages say so.
      if (err instanceof IdentityUnavailableError) throw err;
      request.log.warn({ reason: err instanceof IdTokenRejectedError ? err.reason : (err as Error).message }, 'sign-in could not be verified');
      return ctx.message(request, reply, 400, {
        title: 'We could not verify your sign-in',
        message: 'The answer from Microsoft could not be verified, so you were not signed in.',
        next: 'Start again. If it keeps happening, contact your administrator.',
        links: [{ href: '/signin', label: 'Sign in', primary: true }],
      });
    }

    if (identity.tenantId === PERSONAL_ACCOUNT_TENANT_ID) {
      return ctx.message(request, reply, 403, {
        title: 'Personal Microsoft accounts cannot sign in',
        message: 'Roster is for organisations. You signed in with a personal Microsoft account (Outlook.com, Hotmail, Xbox and similar).',
        next: 'Sign in with the work account your organisation gave you.',
        links: [{ href: '/signin', label: 'Use another account', primary: true }],
      });
    }
    const tenant = await ctx.tenants.get(identity.tenantId);
    if (tenant?.state === 'suspended') {
      return ctx.message(request, reply, 403, {
        title: 'Your organisation\'s access to Roster is suspended',
        message: 'Roster\'s operators have suspended your organisation, so nobody from it can sign in for now. Its data is kept.',
        next: 'Ask your administrator to contact Roster support.',
        links: [{ href: '/', label: 'Home' }],
      });
    }
    if (!tenant || tenant.state !== 'active') {
      const disconnected = tenant?.state === 'disconnected';
      const plan = typeof tenant?.signupContext?.plan === 'string' ? tenant.signupContext.plan : 'team';
      return ctx.render(
        reply,
        'message',
        {
          title: disconnected ? 'Your organisation is not connected to Roster' : tenant?.state === 'offboarded' ? 'Your organisation left Roster' : 'Your organisation has not signed up for Roster',
          heading: disconnected ? 'Your organisation is not connected to Roster' : tenant?.state === 'offboarded' ? 'Your organisation left Roster' : 'Your organisation has not signed up for Roster',
          tone: 'bad',
          message: disconnected
            ? 'Roster\'s access to your organisation was removed in Microsoft Entra ID (its consent was revoked or the app deleted), so nobody from it can sign in. The data Roster had is kept.'
            : 'Roster only lets people in from organisations whose administrator has signed them up.',
          next: disconnected ? 'An administrator of your organisation can reconnect it by granting consent again.' : 'Ask an administrator of your organisation to sign it up. If you are one, use the button below.',
          consentForm: { plan, label: disconnected ? 'Reconnect your organisation' : 'Sign up your organisation' },
          links: [{ href: '/', label: 'Home' }],
        },
        403,
      );
    }

    // Roster's own record decides who is an admin: the proven person who signed the tenant up.
    const signupTenant = pending.context?.signupTenant;
    if (signupTenant === identity.tenantId) await ctx.tenants.recordSignupAdmin(identity.tenantId, identity.objectId, ctx.now());
    const signedUpBy = (await ctx.tenants.get(identity.tenantId))?.signedUpByOid;
    await ctx.users.recordSignIn(
      { tenantId: identity.tenantId, objectId: identity.objectId, displayName: identity.name, username: identity.preferredUsername, email: identity.email },
      ctx.now(),
      signedUpBy === identity.objectId ? 'admin' : undefined,
    );

    const previous = request.cookies[ctx.cookieNames.session];
    if (previous) await ctx.sessions.destroy(previous);
    const { id } = await ctx.sessions.create(identity.tenantId, identity.objectId, ctx.now(), identity.loginHint);
    reply.setCookie(ctx.cookieNames.session, id, { path: '/', httpOnly: true, sameSite: 'lax', secure: ctx.secureCookies });
    return reply.redirect(pending.returnTo ?? '/app', 303);
  });

  app.post<{ Body: { _csrf?: string } }>(
    '/signout',
    { schema: { body: formBody({}) } },
    async (request, reply) => {
      const viewer = request.viewer;
      if (!viewer) return reply.redirect('/', 303);
      if (request.body?._csrf !== viewer.csrfToken) {
        return ctx.message(request, reply, 403, { title: 'Sign-out refused', message: 'The sign-out form was stale.', next: 'Reload the page and sign out again.' });
      }
      await ctx.sessions.destroy(viewer.sessionId);
      reply.clearCookie(ctx.cookieNames.session, { path: '/' });
      return reply.redirect(ctx.entra.logoutUrl({ postLogoutRedirectUri: new URL('/', ctx.publicUrl).href, logoutHint: viewer.loginHint }), 303);
    },
  );
}
