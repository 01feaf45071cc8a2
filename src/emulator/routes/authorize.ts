import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { formFields, type FormFields } from '../form.ts';
import { splitScopes, type PathTenant } from '../identity.ts';
import type { AppRegistration } from '../model.ts';
import { AppRedirectError } from '../signin/answers.ts';
import { continueAs } from '../signin/after-sign-in.ts';
import { checkClient } from '../signin/client-checks.ts';
import { checkAppEnabled, checkPkce, checkResponseMode, checkResponseType, checkScope } from '../signin/request-checks.ts';
import { showPicker, showSignIn } from '../signin/screens.ts';
import { answerStep } from '../signin/steps.ts';
import type { AppReturn, SignInTransaction } from '../signin/transaction.ts';

/** `/authorize`: the sign-in of the authorization code flow. Its pages post back here (`answerStep`). */
export function registerAuthorizeRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  app.get<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/authorize', async (request, reply) => {
    const q = formFields(request.query);
    const { path, app: registration, redirectUri } = checkClient(ctx, request.params.tenant, q);
    const target = checkResponseMode(redirectUri, q);
    checkResponseType(target, q.response_type);
    const scope = checkScope(target, q.scope);
    checkPkce(target, q);
    checkAppEnabled(target, registration);
    checkNotConsumers(target, path, registration);
    const txn = ctx.signIns.start({
      kind: 'authorize',
      path,
      action: `/${encodeURIComponent(request.params.tenant)}/oauth2/v2.0/authorize`,
      appId: registration.appId,
      ...target,
      scopes: splitScopes(scope),
      scopeParam: scope,
      nonce: q.nonce,
      codeChallenge: q.code_challenge,
      codeChallengeMethod: q.code_challenge ? (q.code_challenge_method ?? 'plain') : undefined,
      prompt: q.prompt?.toLowerCase(),
      loginHint: q.login_hint,
    });
    return followPrompt(ctx, request, reply, txn, q);
  });
  app.post('/:tenant/oauth2/v2.0/authorize', (request, reply) => answerStep(ctx, request, reply));
}

function checkNotConsumers(target: AppReturn, path: PathTenant, registration: AppRegistration): void {
  if (path.kind !== 'consumers') return;
  throw new AppRedirectError(
    target,
    'invalid_request',
    9002332,
    `Application '${registration.appId}'(${registration.displayName}) is configured for use by Azure Active Directory users only. Please do not use the /consumers endpoint to serve this request.`,
  );
}

/** `prompt` and the browser's session decide: sign in silently, ask for a password, or show the account picker. */
function followPrompt(ctx: EmulatorContext, request: FastifyRequest, reply: FastifyReply, txn: SignInTransaction, q: FormFields): FastifyReply {
  const session = ctx.sessions.of(request);
  const live = ctx.sessions.liveAccounts(session);
  if (txn.prompt === 'none') {
    const account = ctx.sessions.hintedAccount(session, q.login_hint, q.sid) ?? (live.length === 1 ? live[0]!.account : undefined);
    if (account) return continueAs(ctx, reply, txn, account, true);
    ctx.signIns.finish(txn);
    if (live.length > 1) {
      throw new AppRedirectError(txn, 'interaction_required', 16000, 'Multiple user identities are available for the current request. Please use a login_hint or select an account.');
    }
    throw new AppRedirectError(
      txn,
      'login_required',
      50058,
      "A silent sign-in request was sent but no user is signed in. The cookies used to represent the user's session were not sent in the request to Azure AD.",
    );
  }
  if (txn.prompt === 'login' || live.length === 0) return showSignIn(ctx, reply, txn);
  if (txn.prompt !== 'select_account') {
    const hinted = ctx.sessions.hintedAccount(session, q.login_hint);
    if (hinted) return continueAs(ctx, reply, txn, hinted, false);
  }
  return showPicker(ctx, reply, txn, session);
}
