import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { aadstsCodeOf, IdentityUnavailableError } from '../../identity/errors.ts';
import { IdTokenRejectedError, PERSONAL_ACCOUNT_TENANT_ID, type ValidatedIdentity } from '../../identity/id-token.ts';
import type { PendingAuthRequest } from '../../store/auth-requests.ts';
import type { TenantRecord } from '../../store/tenants.ts';
import { explainSignInError } from '../explain.ts';
import { safeReturnTo } from '../return-to.ts';
import { openSession, personOf, providerAnswerFields, redirectToSignIn, type SignInServices } from '../signed-in.ts';
import { continueSignupAfterSignIn, signupPlanOf } from './signup.ts';

const SignInQuery = Type.Object({ returnTo: Type.Optional(Type.String({ maxLength: 2048 })) });
const CallbackQuery = Type.Object({ code: Type.Optional(Type.String({ maxLength: 4096 })), ...providerAnswerFields });
const SignOutBody = Type.Object({ _csrf: Type.Optional(Type.String({ maxLength: 128 })) });

const SIGN_IN_RATE = { max: 60, timeWindow: '1 minute' };
/** A sign-up still `pending` after this long was abandoned (or forged): sign-in treats the tenant as never signed up. */
const PENDING_SIGNUP_MS = 24 * 3_600_000;
const SIGN_IN_AGAIN = { href: '/signin', label: 'Sign in', primary: true };

/** Sign-in (code flow, PKCE, nonce), its callback (which also carries a sign-up's first step) and sign-out. */
export const signInRoutes: FastifyPluginAsyncTypebox<SignInServices> = async (app, ctx) => {
  const redirectUri = new URL('/auth/callback', ctx.publicUrl).href;

  app.get('/signin', { config: { rateLimit: SIGN_IN_RATE }, schema: { querystring: SignInQuery } }, async (request, reply) =>
    redirectToSignIn(ctx, request, reply, { returnTo: safeReturnTo(request.query.returnTo), context: null }),
  );

  app.get('/auth/callback', { config: { rateLimit: SIGN_IN_RATE }, schema: { querystring: CallbackQuery } }, async (request, reply) => {
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
        links: [SIGN_IN_AGAIN],
      });
    }
    if (error) {
      const explanation = explainSignInError(error, request.query.error_description);
      request.log.info({ error, aadsts: aadstsCodeOf(request.query.error_description) }, 'sign-in refused by the identity provider');
      return ctx.message(request, reply, 400, { title: explanation.title, message: explanation.message, next: explanation.next, links: [{ href: '/', label: 'Home' }] });
    }
    if (!code) return ctx.message(request, reply, 400, { title: 'Sign-in incomplete', message: 'Microsoft returned no sign-in result.', next: 'Start again.', links: [SIGN_IN_AGAIN] });

    const identity = await verifiedIdentity(ctx, request, code, redirectUri, pending);
    if (!identity) {
      return ctx.message(request, reply, 400, {
        title: 'We could not verify your sign-in',
        message: 'The answer from Microsoft could not be verified, so you were not signed in.',
        next: 'Start again. If it keeps happening, contact your administrator.',
        links: [SIGN_IN_AGAIN],
      });
    }
    // The first step of a sign-up: the signer is now known; consent comes next.
    const signupPlan = signupPlanOf(pending.context);
    if (signupPlan) return continueSignupAfterSignIn(ctx, request, reply, personOf(identity), signupPlan);
    return admit(ctx, request, reply, identity, pending.returnTo);
  });

  app.post('/signout', { schema: { body: SignOutBody } }, async (request, reply) => {
    const viewer = request.viewer;
    if (!viewer) return reply.redirect('/', 303);
    if (request.body?._csrf !== viewer.csrfToken) {
      return ctx.message(request, reply, 403, { title: 'Sign-out refused', message: 'The sign-out form was stale.', next: 'Reload the page and sign out again.' });
    }
    await ctx.sessions.destroy(viewer.sessionId);
    reply.clearCookie(ctx.cookieNames.session, { path: '/' });
    return reply.redirect(ctx.entra.logoutUrl({ postLogoutRedirectUri: new URL('/', ctx.publicUrl).href, logoutHint: viewer.loginHint }), 303);
  });
};

/** Redeems the code and validates the ID token; undefined (and a log line) when either fails. */
async function verifiedIdentity(ctx: SignInServices, request: FastifyRequest, code: string, redirectUri: string, pending: PendingAuthRequest): Promise<ValidatedIdentity | undefined> {
  try {
    const idToken = await ctx.entra.redeemCode({ code, redirectUri, codeVerifier: pending.codeVerifier, nonce: pending.nonce });
    return await ctx.validator.validate(idToken, pending.nonce);
  } catch (err) {
    // Not a verdict on the sign-in: Microsoft could not be asked. The error pages say so.
    if (err instanceof IdentityUnavailableError) throw err;
    request.log.warn({ reason: err instanceof IdTokenRejectedError ? err.reason : (err as Error).message }, 'sign-in could not be verified');
    return undefined;
  }
}

/** Lets a validated person in only when their tenant is an active one of Roster's; their role is whatever Roster recorded. */
async function admit(ctx: SignInServices, request: FastifyRequest, reply: FastifyReply, identity: ValidatedIdentity, returnTo: string | null): Promise<FastifyReply> {
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
  if (tenant?.state !== 'active') {
    const recentlyPending = tenant?.state === 'pending' && ctx.now() - tenant.updatedAt < PENDING_SIGNUP_MS;
    return notAdmitted(ctx, reply, tenant?.state === 'pending' && !recentlyPending ? undefined : tenant);
  }
  // The tenant's access list may leave this person out: no session, and a page that says why.
  const verdict = await ctx.groupRoles.verdict(tenant, identity.objectId);
  if (!verdict.admitted) return notInAccessList(ctx, request, reply, tenant);
  // Roster's own records decide who is an admin (the signer was recorded at sign-up, mapped groups give roles); a token's claims never do.
  await openSession(ctx, request, reply, personOf(identity));
  await ctx.groupRoles.recordMappedRole(tenant.id, identity.objectId, verdict.mappedRole);
  return reply.redirect(returnTo ?? '/app', 303);
}

/** The page for a person of an active tenant whose admins limited Roster to groups this person is in none of. */
async function notInAccessList(ctx: SignInServices, request: FastifyRequest, reply: FastifyReply, tenant: TenantRecord): Promise<FastifyReply> {
  const allowed = (await ctx.groupRoles.list(tenant.id)).filter((mapping) => mapping.grants === 'access' && !mapping.inactive);
  const names = allowed.map((mapping) => mapping.displayName ?? mapping.groupId);
  request.log.info({ tenant: tenant.id }, 'sign-in refused: not in a group allowed to use Roster');
  return ctx.message(request, reply, 403, {
    title: 'Roster is limited to certain groups',
    message: `${tenant.displayName}'s Roster administrators allow only members of ${names.length === 1 ? 'the group' : 'these groups'} ${names.length ? names.join(', ') : '(none left)'} to use Roster, and you are not a member of ${names.length === 1 ? 'it' : 'any of them'}. You were not signed in.`,
    next: 'If you need Roster, ask your IT department to add you to one of these groups in Microsoft Entra ID. Membership changes reach Roster at its next sync.',
    links: [{ href: '/', label: 'Home' }],
  });
}

/** The page for a valid sign-in from a tenant Roster does not admit: never signed up, left, disconnected, or a sign-up in progress. */
function notAdmitted(ctx: SignInServices, reply: FastifyReply, tenant: TenantRecord | undefined): FastifyReply {
  const plan = typeof tenant?.signupContext?.plan === 'string' ? tenant.signupContext.plan : 'team';
  const page = {
    disconnected: {
      title: 'Your organisation is not connected to Roster',
      message: 'Roster\'s access to your organisation was removed in Microsoft Entra ID (its consent was revoked or the app deleted), so nobody from it can sign in. The data Roster had is kept.',
      next: 'An administrator of your organisation can reconnect it by granting consent again.',
      label: 'Reconnect your organisation',
    },
    offboarded: {
      title: 'Your organisation left Roster',
      message: 'Roster only lets people in from organisations whose administrator has signed them up.',
      next: 'Ask an administrator of your organisation to sign it up again. If you are one, use the button below.',
      label: 'Sign up your organisation',
    },
    pending: {
      title: 'Your organisation\'s sign-up is not finished',
      message: 'An administrator started signing your organisation up, but Microsoft has not confirmed the consent to Roster yet, so nobody from it can sign in.',
      next: 'Try again in a few minutes. If it stays like this, an administrator of your organisation can sign it up again.',
      label: 'Sign up your organisation',
    },
    never: {
      title: 'Your organisation has not signed up for Roster',
      message: 'Roster only lets people in from organisations whose administrator has signed them up.',
      next: 'Ask an administrator of your organisation to sign it up. If you are one, use the button below.',
      label: 'Sign up your organisation',
    },
  }[tenant?.state === 'disconnected' || tenant?.state === 'offboarded' || tenant?.state === 'pending' ? tenant.state : 'never'];
  return ctx.render(
    reply,
    'message',
    { title: page.title, heading: page.title, tone: 'bad', message: page.message, next: page.next, consentForm: { plan, label: page.label }, links: [{ href: '/', label: 'Home' }] },
    403,
  );
}
