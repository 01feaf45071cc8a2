import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { isConsentingAdmin } from '../../identity/directory-roles.ts';
import { aadstsCodeOf } from '../../identity/errors.ts';
import { PERSONAL_ACCOUNT_TENANT_ID } from '../../identity/id-token.ts';
import { randomToken } from '../../store/tokens.ts';
import { explainSignupError } from '../explain.ts';
import { GUID_PATTERN } from '../schemas.ts';
import { openSession, providerAnswerFields, redirectToSignIn, type SignedInPerson, type SignInServices } from '../signed-in.ts';

/**
 * Signing an organisation up, in one browser-bound flow:
 * 1. POST /signup: the person signs in (code flow, PKCE, nonce; back at /auth/callback);
 * 2. a directory administrator is sent to admin consent for their own tenant only;
 * 3. GET /signup/callback accepts the consent only for that flow and tenant, Roster
 *    confirms it with its own app token, and the signer becomes the first admin.
 * A callback that belongs to no such flow changes nothing.
 */

const PLANS = ['team', 'business'] as const;
type Plan = (typeof PLANS)[number];
/** Seconds between automatic retries while consent propagates, and how many before giving up. */
const RETRY_SECONDS = 15;
const MAX_CONFIRM_ATTEMPTS = 20;
const SIGN_UP_RATE = { max: 30, timeWindow: '1 minute' };

/** A sign-up after its sign-in step, kept server-side under a hashed `state` bound to the browser. */
interface SignupFlow {
  /** `consent`: waiting for the consent callback; `confirm`: consent reported, waiting for Microsoft to let Roster in. */
  stage: 'consent' | 'confirm';
  plan: Plan;
  signer: SignedInPerson;
  attempts: number;
}

const HOME = { href: '/', label: 'Back to the home page', primary: true };

const SignupBody = Type.Object({ plan: Type.Optional(Type.Enum([...PLANS])) });
const ConsentCallbackQuery = Type.Object({
  admin_consent: Type.Optional(Type.String({ maxLength: 16 })),
  tenant: Type.Optional(Type.String({ pattern: GUID_PATTERN })),
  scope: Type.Optional(Type.String({ maxLength: 2048 })),
  error_uri: Type.Optional(Type.String({ maxLength: 2048 })),
  ...providerAnswerFields,
});
const ConfirmBody = Type.Object({ state: Type.Optional(Type.String({ maxLength: 512 })) });

export const signupRoutes: FastifyPluginAsyncTypebox<SignInServices> = async (app, ctx) => {
  // Who signs up must be known before anything is granted: sign in first.
  app.post('/signup', { config: { rateLimit: SIGN_UP_RATE }, schema: { body: SignupBody } }, async (request, reply) =>
    redirectToSignIn(ctx, request, reply, { returnTo: null, context: { signupPlan: request.body?.plan ?? 'team' }, prompt: 'select_account' }),
  );

  app.get('/signup/callback', { config: { rateLimit: SIGN_UP_RATE }, schema: { querystring: ConsentCallbackQuery } }, async (request, reply) => {
    reply.header('referrer-policy', 'no-referrer');
    const flow = await takeFlow(ctx, request, request.query.state, 'consent');
    if (!flow) return expired(ctx, request, reply);
    const { error, tenant } = request.query;
    if (error) {
      const explanation = explainSignupError(error, request.query.error_description);
      request.log.info({ error, aadsts: aadstsCodeOf(request.query.error_description) }, 'sign-up refused by the identity provider');
      return ctx.message(request, reply, 400, { title: explanation.title, message: explanation.message, next: explanation.next, links: [HOME] });
    }
    if (request.query.admin_consent !== 'True' || !tenant) {
      return ctx.message(request, reply, 400, { title: 'Sign-up incomplete', message: 'Microsoft did not report that consent was granted. Nothing was changed.', next: 'Start the sign-up again.', links: [HOME] });
    }
    if (tenant.toLowerCase() === PERSONAL_ACCOUNT_TENANT_ID) return personalAccount(ctx, request, reply);
    if (tenant.toLowerCase() !== flow.signer.tenantId) {
      request.log.warn({ flowTenant: flow.signer.tenantId, callbackTenant: tenant }, 'consent callback for another tenant than the signed-in admin\'s refused');
      return ctx.message(request, reply, 400, {
        title: 'Consent was for another organisation',
        message: 'The consent that came back is not for the organisation you signed in with, so nothing was changed.',
        next: 'Start the sign-up again and grant consent with the same administrator account.',
        links: [HOME],
      });
    }
    return confirm(ctx, request, reply, { ...flow, stage: 'confirm', attempts: 0 });
  });

  app.post('/signup/confirm', { config: { rateLimit: SIGN_UP_RATE }, schema: { body: ConfirmBody } }, async (request, reply) => {
    const flow = await takeFlow(ctx, request, request.body?.state, 'confirm');
    if (!flow) return expired(ctx, request, reply);
    return confirm(ctx, request, reply, flow);
  });
};

/** The plan of a sign-up whose sign-in step this auth request was, if it was one. */
export function signupPlanOf(context: Record<string, unknown> | null): Plan | undefined {
  const plan = context?.signupPlan;
  return PLANS.find((p) => p === plan);
}

/**
 * Step 2, right after the signer's ID token was validated: only a directory
 * administrator (Global or Privileged Role Administrator in this sign-in's
 * `wids`) goes on to admin consent, and only for their own tenant.
 */
export async function continueSignupAfterSignIn(ctx: SignInServices, request: FastifyRequest, reply: FastifyReply, signer: SignedInPerson, plan: Plan): Promise<FastifyReply> {
  if (signer.tenantId === PERSONAL_ACCOUNT_TENANT_ID) return personalAccount(ctx, request, reply);
  if ((await ctx.tenants.get(signer.tenantId))?.state === 'suspended') return suspended(ctx, request, reply, signer.tenantId);
  if (!isConsentingAdmin(signer.directoryRoles)) {
    request.log.info({ tenant: signer.tenantId }, 'sign-up by a person who is not a directory administrator refused');
    return ctx.render(
      reply,
      'message',
      {
        title: 'An administrator must sign your organisation up',
        heading: 'An administrator must sign your organisation up',
        tone: 'bad',
        message: 'Signing an organisation up gives Roster permission to read its directory, which only a Global Administrator or Privileged Role Administrator of your Microsoft Entra directory can grant. The account you signed in with is not one. Nothing was changed.',
        next: 'Ask an administrator of your organisation to sign it up. If you are one, sign up again and choose your administrator account.',
        consentForm: { plan, label: 'Sign up with another account' },
        links: [{ href: '/', label: 'Back to the home page' }],
      },
      403,
    );
  }
  const flow: SignupFlow = { stage: 'consent', plan, signer, attempts: 0 };
  const state = await saveFlow(ctx, request, reply, flow);
  return reply.redirect(ctx.entra.adminConsentUrl({ tenantId: signer.tenantId, redirectUri: new URL('/signup/callback', ctx.publicUrl).href, state }), 303);
}

async function saveFlow(ctx: SignInServices, request: FastifyRequest, reply: FastifyReply, flow: SignupFlow): Promise<string> {
  const binding = ctx.browserBinding(request, reply);
  return ctx.authRequests.create({ kind: 'signup', browserBinding: binding, nonce: randomToken(), codeVerifier: '', returnTo: null, context: { ...flow } }, ctx.now());
}

/** The flow behind `state`, if this browser started it, it is at `stage`, and it has not expired or been used. */
async function takeFlow(ctx: SignInServices, request: FastifyRequest, state: string | undefined, stage: SignupFlow['stage']): Promise<SignupFlow | undefined> {
  const binding = request.cookies[ctx.cookieNames.binding];
  if (!state || !binding) return undefined;
  const pending = await ctx.authRequests.take(state, 'signup', binding, ctx.now());
  const flow = pending?.context as Partial<SignupFlow> | null | undefined;
  if (flow?.stage !== stage || !flow.signer || !flow.plan) return undefined;
  return { stage, plan: flow.plan, signer: flow.signer, attempts: flow.attempts ?? 0 };
}

function expired(ctx: SignInServices, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return ctx.message(request, reply, 400, {
    title: 'This sign-up has expired',
    message: 'The sign-up you came back from was not started in this browser, took too long, or was already used. Nothing was changed.',
    next: 'Start the sign-up again from the home page.',
    links: [HOME],
  });
}

function personalAccount(ctx: SignInServices, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return ctx.message(request, reply, 403, {
    title: 'Personal Microsoft accounts cannot sign up',
    message: 'Roster is for organisations. You signed in with a personal Microsoft account (Outlook.com, Hotmail, Xbox and similar). Nothing was changed.',
    next: 'Sign up with an administrator account of your organisation\'s Microsoft Entra directory.',
    links: [HOME],
  });
}

function suspended(ctx: SignInServices, request: FastifyRequest, reply: FastifyReply, tenantId: string): FastifyReply {
  request.log.warn({ tenant: tenantId }, 'sign-up of a suspended tenant refused');
  return ctx.message(request, reply, 403, {
    title: 'Your organisation\'s access to Roster is suspended',
    message: 'Roster\'s operators have suspended your organisation, so it cannot be signed up again for now. Nothing was changed.',
    next: 'Contact Roster support.',
    links: [HOME],
  });
}

/** Step 3: Roster confirms the consent itself, then records the signer as the first admin and signs them in. */
async function confirm(ctx: SignInServices, request: FastifyRequest, reply: FastifyReply, flow: SignupFlow): Promise<FastifyReply> {
  const { signer } = flow;
  const outcome = await ctx.onboarding.confirm(signer.tenantId, { signedUpByOid: signer.objectId, signupContext: { plan: flow.plan } });
  switch (outcome.kind) {
    case 'suspended':
      return suspended(ctx, request, reply, signer.tenantId);
    case 'active': {
      const tenant = outcome.tenant;
      const csrfToken = await openSession(ctx, request, reply, signer);
      const firstAdmin = await ctx.users.grantFirstAdmin(tenant.id, signer.objectId, ctx.now());
      const role = (await ctx.users.get(tenant.id, signer.objectId))?.rosterRole;
      request.log.info({ tenant: tenant.id, firstAdmin }, 'organisation signed up');
      // A new organisation's directory is read at once, not at the next scheduled round.
      ctx.sync.requestSync(tenant.id);
      return ctx.render(reply, 'message', {
        title: 'Organisation signed up',
        heading: `${tenant.displayName} is signed up`,
        tone: 'ok',
        message: `Roster confirmed your organisation with Microsoft. Everyone at ${tenant.domains.join(', ')} can now sign in with their work account.`,
        next: firstAdmin
          ? 'You are signed in as your organisation\'s first Roster administrator. You can make others administrators from their user page.'
          : 'You are signed in. Your organisation already has Roster administrators, so your role is unchanged.',
        links: [{ href: '/app', label: 'Go to Roster', primary: true }],
        // The page is the first of the new session: its header shows the person signed in, not a second "Sign in".
        viewer: { name: signer.name ?? signer.preferredUsername ?? 'you', tenantName: tenant.displayName, csrfToken, isAdmin: role === 'admin', isOperator: false },
      });
    }
    case 'propagating': {
      const attempts = flow.attempts + 1;
      request.log.info({ tenant: signer.tenantId, attempts, detail: outcome.detail }, 'consent not visible yet');
      if (attempts >= MAX_CONFIRM_ATTEMPTS) {
        return ctx.message(request, reply, 502, {
          title: 'Microsoft has not confirmed the sign-up',
          message: 'Several minutes after the consent, Microsoft still does not let Roster read your organisation. The consent may not have been granted for this organisation.',
          next: 'Start the sign-up again with an administrator account. If it keeps happening, contact support.',
          links: [HOME],
        });
      }
      const state = await saveFlow(ctx, request, reply, { ...flow, attempts });
      return ctx.render(
        reply,
        'message',
        {
          title: 'Almost there',
          heading: 'Microsoft is still processing your consent',
          tone: 'info',
          message: 'Consent can take a minute to reach all of Microsoft\'s services. Roster will finish the sign-up as soon as it does.',
          next: 'Try again in a minute. You can leave this page open: it retries by itself.',
          refreshSeconds: RETRY_SECONDS,
          retryForm: { action: '/signup/confirm', fields: { state } },
        },
        202,
      );
    }
    case 'mismatch':
    case 'failed':
      request.log.warn({ tenant: signer.tenantId, outcome: outcome.kind, detail: outcome.detail }, 'sign-up could not be confirmed');
      return ctx.message(request, reply, 502, {
        title: 'We could not confirm your organisation',
        message: 'Microsoft did not confirm the organisation that granted consent, so nothing was registered.',
        next: 'Start the sign-up again. If it keeps happening, contact support.',
        links: [HOME],
      });
  }
}
