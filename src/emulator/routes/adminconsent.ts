import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { formFields } from '../form.ts';
import { splitScopes } from '../identity.ts';
import { AppRedirectError } from '../signin/answers.ts';
import { checkClient } from '../signin/client-checks.ts';
import { checkAppEnabled } from '../signin/request-checks.ts';
import { showPicker, showSignIn } from '../signin/screens.ts';
import { answerStep } from '../signin/steps.ts';

/** `/adminconsent`: an administrator grants the app's application permissions for the whole organisation. */
export function registerAdminConsentRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  app.get<{ Params: { tenant: string } }>('/:tenant/v2.0/adminconsent', async (request, reply) => {
    const q = formFields(request.query);
    const { path, app: registration, redirectUri } = checkClient(ctx, request.params.tenant, q);
    const target = { redirectUri, responseMode: 'query' as const, state: q.state };
    if (path.kind === 'common' || path.kind === 'consumers') {
      throw new AppRedirectError(
        target,
        'invalid_request',
        9001023,
        "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
      );
    }
    checkAppEnabled(target, registration);
    const scopeParam = q.scope ?? 'https://graph.microsoft.com/.default';
    const txn = ctx.signIns.start({
      kind: 'adminconsent',
      path,
      action: `/${encodeURIComponent(request.params.tenant)}/v2.0/adminconsent`,
      appId: registration.appId,
      ...target,
      scopes: splitScopes(scopeParam),
      scopeParam,
      nonce: undefined,
      codeChallenge: undefined,
      codeChallengeMethod: undefined,
      prompt: undefined,
      loginHint: q.login_hint,
    });
    const session = ctx.sessions.of(request);
    if (ctx.sessions.liveAccounts(session).length === 0) return showSignIn(ctx, reply, txn);
    return showPicker(ctx, reply, txn, session);
  });
  app.post('/:tenant/v2.0/adminconsent', (request, reply) => answerStep(ctx, request, reply));
}
