import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { randomToken } from '../../store/tokens.ts';
import type { WebContext } from '../context.ts';
import { explainSignupError } from '../explain.ts';
import { GUID_PATTERN } from '../schemas.ts';

const PLANS = ['team', 'business'] as const;
/** Seconds between automatic retries while consent propagates, and how many before giving up. */
const RETRY_SECONDS = 15;
const MAX_CONFIRM_ATTEMPTS = 20;
const SIGN_UP_RATE = { max: 30, timeWindow: '1 minute' };

interface SignupContext {
  plan: (typeof PLANS)[number];
  tenant?: string;
  attempts?: number;
}

export function registerSignupRoutes(app: FastifyInstance, ctx: WebContext): void {
  const redirectUri = new URL('/signup/callback', ctx.publicUrl).href;

  app.post<{ Body: { plan?: (typeof PLANS)[number] } }>(
    '/signup',
    {
      config: { rateLimit: SIGN_UP_RATE },
      schema: { body: { type: 'object', properties: { plan: { type: 'string', enum: [...PLANS] } } } },
    },
    async (request, reply) => {
      const context: SignupContext = { plan: request.body?.plan ?? 'team' };
      const state = await newSignupState(ctx, request, reply, context);
      return reply.redirect(ctx.entra.adminConsentUrl({ redirectUri, state }), 303);
    },
  );

  app.get<{ Querystring: { admin_consent?: string; tenant?: string; state?: string; error?: string; error_description?: string } }>(
    '/signup/callback',
    {
      config: { rateLimit: SIGN_UP_RATE },
      schema: {
        querystring: {
          type: 'object',
          properties: {
            admin_consent: { type: 'string', maxLength: 16 },
            tenant: { type: 'string', pattern: GUID_PATTERN },
            scope: { type: 'string', maxLength: 2048 },
            state: { type: 'string', maxLength: 512 },
            error: { type: 'string', maxLength: 256 },
            error_description: { type: 'string', maxLength: 4096 },
            error_subcode: { type: 'string', maxLength: 256 },
            error_uri: { type: 'string', maxLength: 2048 },
          },
        },
      },
    },
    async (request, reply) => {
      reply.header('referrer-policy', 'no-referrer');
      const pending = await takeSignupState(ctx, request, request.query.state);
      if (!pending) return expired(ctx, request, reply);
      const { error, tenant } = request.query;
      if (error) {
        const explanation = explainSignupError(error, request.query.error_description);
        request.log.info({ error, aadsts: /AADSTS\d+/.exec(request.query.error_description ?? '')?.[0] }, 'sign-up refused by the identity provider');
        return ctx.message(request, reply, 400, {
          title: explanation.title,
          message: explanation.message,
          next: explanation.next,
          links: [{ href: '/', label: 'Back to the home page', primary: true }],
        });
      }
      if (request.query.admin_consent !== 'True' || !tenant) {
        return ctx.message(request, reply, 400, { title: 'Sign-up incomplete', message: 'Microsoft did not report that consent was granted.', next: 'Start the sign-up again.', links: [{ href: '/', label: 'Home', primary: true }] });
      }
      return confirm(ctx, request, reply, { ...pending, tenant: tenant.toLowerCase(), attempts: 0 });
    },
  );

  app.post<{ Body: { state?: string } }>(
    '/signup/confirm',
    { config: { rateLimit: SIGN_UP_RATE }, schema: { body: { type: 'object', properties: { state: { type: 'string', maxLength: 512 } } } } },
    async (request, reply) => {
      const pending = await takeSignupState(ctx, request, request.body?.state);
      if (!pending?.tenant) return expired(ctx, request, reply);
      return confirm(ctx, request, reply, { ...pending, tenant: pending.tenant });
    },
  );
}

async function newSignupState(ctx: WebContext, request: FastifyRequest, reply: FastifyReply, context: SignupContext): Promise<string> {
  const binding = ctx.browserBinding(request, reply);
  return ctx.authRequests.create(
    { kind: 'signup', browserBinding: binding, nonce: randomToken(), codeVerifier: '', returnTo: null, context: { ...context } },
    ctx.now(),
  );
}

async function takeSignupState(ctx: WebContext, request: FastifyRequest, state: string | undefined): Promise<SignupContext | undefined> {
  const binding = request.cookies[ctx.cookieNames.binding];
  if (!state || !binding) return undefined;
  const pending = await ctx.authRequests.take(state, 'signup', binding, ctx.now());
  return pending?.context as SignupContext | undefined;
}

function expired(ctx: WebContext, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return ctx.message(request, reply, 400, {
    title: 'This sign-up has expired',
    message: 'The sign-up you came back from was not started in this browser, took too long, or was already used. Nothing was changed.',
    next: 'Start the sign-up again from the home page.',
    links: [{ href: '/', label: 'Back to the home page', primary: true }],
  });
}

async function confirm(ctx: WebContext, request: FastifyRequest, reply: FastifyReply, context: SignupContext & { tenant: string }): Promise<FastifyReply> {
  // Consenting again must not undo an operator's suspension (confirming would make the tenant active).
  if ((await ctx.tenants.get(context.tenant))?.state === 'suspended') {
    request.log.warn({ tenant: context.tenant }, 'sign-up of a suspended tenant refused');
    return ctx.message(request, reply, 403, {
      title: 'Your organisation\'s access to Roster is suspended',
      message: 'Roster\'s operators have suspended your organisation, so it cannot be signed up again for now. Nothing was changed.',
      next: 'Contact Roster support.',
      links: [{ href: '/', label: 'Back to the home page', primary: true }],
    });
  }
  const outcome = await ctx.onboarding.confirm(context.tenant, { signedUpByOid: null, signupContext: { plan: context.plan } });
  switch (outcome.kind) {
    case 'active': {
      request.log.info({ tenant: outcome.tenant.id }, 'organisation signed up');
      // A new organisation's directory is read at once, not at the next scheduled round.
      ctx.sync.requestSync(outcome.tenant.id);
      // Signing the admin in proves who they are and records them as the tenant's first Roster admin.
      const binding = ctx.browserBinding(request, reply);
      const pkce = await ctx.entra.newPkcePair();
      const nonce = randomToken();
      const state = await ctx.authRequests.create(
        { kind: 'signin', browserBinding: binding, nonce, codeVerifier: pkce.verifier, returnTo: '/app', context: { signupTenant: outcome.tenant.id } },
        ctx.now(),
      );
      const signIn = await ctx.entra.signInUrl({ redirectUri: new URL('/auth/callback', ctx.publicUrl).href, state, nonce, codeChallenge: pkce.challenge });
      return ctx.render(reply, 'message', {
        title: 'Organisation signed up',
        heading: `${outcome.tenant.displayName} is signed up`,
        tone: 'ok',
        message: `Roster confirmed your organisation with Microsoft. Everyone at ${outcome.tenant.domains.join(', ')} can now sign in with their work account.`,
        next: 'Sign in to finish: as the person who signed up, you become your organisation\'s first Roster administrator.',
        links: [{ href: signIn, label: 'Sign in', primary: true }],
      });
    }
    case 'propagating': {
      const attempts = (context.attempts ?? 0) + 1;
      request.log.info({ tenant: context.tenant, attempts, detail: outcome.detail }, 'consent not visible yet');
      if (attempts >= MAX_CONFIRM_ATTEMPTS) {
        return ctx.message(request, reply, 502, {
          title: 'Microsoft has not confirmed the sign-up',
          message: 'Several minutes after the consent, Microsoft still does not let Roster read your organisation. The consent may not have been granted for this organisation.',
          next: 'Start the sign-up again with an administrator account. If it keeps happening, contact support.',
          links: [{ href: '/', label: 'Back to the home page', primary: true }],
        });
      }
      const state = await newSignupState(ctx, request, reply, { ...context, attempts });
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
      request.log.warn({ tenant: context.tenant, outcome: outcome.kind, detail: outcome.detail }, 'sign-up could not be confirmed');
      return ctx.message(request, reply, 502, {
        title: 'We could not confirm your organisation',
        message: 'Microsoft did not confirm the organisation that granted consent, so nothing was registered.',
        next: 'Start the sign-up again. If it keeps happening, contact support.',
        links: [{ href: '/', label: 'Back to the home page', primary: true }],
      });
  }
}
