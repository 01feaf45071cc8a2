import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { IdentityError } from '../errors.ts';
import { formFields } from '../form.ts';
import { resolvePathTenant, splitScopes } from '../identity.ts';
import { sendPage, SignInPageError } from '../signin/answers.ts';
import { showPicker, showSignIn } from '../signin/screens.ts';
import { deviceCodeDonePage, deviceCodeEntryPage } from '../views.ts';
import { tenantNotFound } from './discovery.ts';

export const DEVICE_LOGIN_PATH = '/devicelogin';
const COMPLETE_PATH = '/devicelogin/complete';

/**
 * The device code flow: the terminal asks for a code on the back channel; a
 * person types it on `/devicelogin` and signs in on the usual sign-in pages,
 * whose answer comes back to `/devicelogin/complete` instead of to an app.
 * The token endpoint's device code grant (`token.ts`) reads the outcome.
 */
export function registerDeviceCodeEndpoint(app: FastifyInstance, ctx: EmulatorContext): void {
  app.post<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/devicecode', async (request, reply) => {
    const body = formFields(request.body);
    const path = resolvePathTenant(ctx, request.params.tenant);
    if (!path) throw tenantNotFound(request.params.tenant);
    if (!body.client_id) throw new IdentityError('invalid_request', 900144, "The request body must contain the following parameter: 'client_id'.");
    const registration = ctx.directory.apps.get(body.client_id);
    if (!registration) {
      throw new IdentityError('unauthorized_client', 700016, `Application with identifier '${body.client_id}' was not found in the directory '${request.params.tenant}'.`);
    }
    if (path.kind === 'consumers') {
      throw new IdentityError('invalid_request', 9002332, `Application '${registration.appId}'(${registration.displayName}) is configured for use by Azure Active Directory users only.`);
    }
    const scopes = splitScopes(body.scope);
    if (scopes.length === 0) throw new IdentityError('invalid_request', 900144, "The request body must contain the following parameter: 'scope'.");
    const entry = ctx.deviceCodes.start({ clientId: registration.appId, path, scopes, nowMs: ctx.clock.nowMs() });
    const verificationUri = `${ctx.urls.pages}${DEVICE_LOGIN_PATH}`;
    return reply.header('cache-control', 'no-store').send({
      user_code: entry.userCode,
      device_code: entry.deviceCode,
      verification_uri: verificationUri,
      expires_in: Math.round((entry.expiresAtMs - ctx.clock.nowMs()) / 1000),
      interval: entry.intervalSeconds,
      message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${entry.userCode} to authenticate.`,
    });
  });
}

export function registerDeviceLoginPages(app: FastifyInstance, ctx: EmulatorContext): void {
  app.get(DEVICE_LOGIN_PATH, async (_request, reply) => sendPage(reply, deviceCodeEntryPage({ action: DEVICE_LOGIN_PATH })));

  app.post(DEVICE_LOGIN_PATH, async (request, reply) => {
    const typed = formFields(request.body).otc ?? '';
    const entry = ctx.deviceCodes.byUserCode(typed, ctx.clock.nowMs());
    if (!entry) {
      return sendPage(reply, deviceCodeEntryPage({ action: DEVICE_LOGIN_PATH, error: "That code didn't work. Check the code and try again." }), 400);
    }
    const txn = ctx.signIns.start({
      kind: 'authorize',
      path: entry.path,
      action: `/${encodeURIComponent(entry.path.segment)}/oauth2/v2.0/authorize`,
      appId: entry.clientId,
      redirectUri: `${ctx.urls.pages}${COMPLETE_PATH}`,
      responseMode: 'query',
      state: entry.signInState,
      scopes: entry.scopes,
      scopeParam: entry.scopes.join(' '),
      nonce: undefined,
      codeChallenge: undefined,
      codeChallengeMethod: undefined,
      prompt: 'select_account',
      loginHint: undefined,
    });
    const session = ctx.sessions.of(request);
    return ctx.sessions.liveAccounts(session).length > 0 ? showPicker(ctx, reply, txn, session) : showSignIn(ctx, reply, txn);
  });

  // Where the sign-in pages send their answer: the code becomes the device's approval, never a token in the browser.
  app.get(COMPLETE_PATH, async (request, reply) => {
    const q = formFields(request.query);
    const entry = ctx.deviceCodes.bySignInState(q.state);
    if (!entry || entry.outcome) throw new SignInPageError(50089, 'Your sign-in request has expired or is not valid. Go back to your device and sign in again.');
    const appName = ctx.directory.apps.get(entry.clientId)?.displayName ?? entry.clientId;
    if (q.error) {
      entry.outcome = { approved: false };
      return sendPage(reply, deviceCodeDonePage({ appName, approved: false }));
    }
    const code = q.code ? ctx.grants.codes.get(q.code) : undefined;
    const redirectUri = `${ctx.urls.pages}${COMPLETE_PATH}`;
    if (!code || code.redeemed || code.clientId !== entry.clientId || code.redirectUri !== redirectUri || code.expiresAtMs <= ctx.clock.nowMs()) {
      throw new SignInPageError(50089, 'Your sign-in request has expired or is not valid. Go back to your device and sign in again.');
    }
    code.redeemed = true;
    entry.outcome = { approved: true, account: { tenantId: code.tenantId, userId: code.userId, sid: code.sid }, scopes: code.scopes };
    return sendPage(reply, deviceCodeDonePage({ appName, approved: true }));
  });
}
