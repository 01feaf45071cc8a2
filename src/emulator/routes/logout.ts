import type { FastifyInstance, FastifyReply } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { formFields, type FormFields } from '../form.ts';
import type { SignedInUser } from '../grants.ts';
import { parseLoginHint } from '../identity.ts';
import { sendPage } from '../signin/answers.ts';
import { accountKey, userOf, type SsoSession } from '../signin/sso-session.ts';
import { logoutPickerPage, signedOutPage } from '../views.ts';

/** Front-channel logout: `logout_hint` signs one account out; without it the browser picks which. */
export function registerLogoutRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  app.get<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/logout', async (request, reply) => {
    const q = formFields(request.query);
    const session = ctx.sessions.of(request);
    if (q.logout_hint) {
      signOut(session, hintMatcher(ctx, q.logout_hint));
      return finishLogout(ctx, reply, session, q);
    }
    const accounts = ctx.sessions.tiles(session);
    if (!session || accounts.length === 0) {
      signOut(session, () => true);
      return finishLogout(ctx, reply, session, q);
    }
    const fields: Record<string, string> = {};
    for (const key of ['post_logout_redirect_uri', 'client_id', 'state'] as const) {
      const value = q[key];
      if (value !== undefined) fields[key] = value;
    }
    return sendPage(reply, logoutPickerPage({ action: `/${encodeURIComponent(request.params.tenant)}/oauth2/v2.0/logout`, accounts, fields }));
  });

  app.post<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/logout', async (request, reply) => {
    const body = formFields(request.body);
    const session = ctx.sessions.of(request);
    signOut(session, (a) => accountKey(a) === body.account);
    return finishLogout(ctx, reply, session, body);
  });
}

/** Our opaque hint names the account exactly; anything else is taken as a UPN. */
function hintMatcher(ctx: EmulatorContext, logoutHint: string): (a: SignedInUser) => boolean {
  const hint = parseLoginHint(logoutHint);
  const lower = logoutHint.toLowerCase();
  return (a) => {
    if (hint) return a.tenantId === hint.tid && a.userId === hint.oid;
    return userOf(ctx.directory, a)?.user.props.userPrincipalName.toLowerCase() === lower;
  };
}

function signOut(session: SsoSession | undefined, match: (a: SignedInUser) => boolean): void {
  if (session) session.accounts = session.accounts.filter((a) => !match(a));
}

/** Only registered URIs are followed after logout; anything else ends on the emulator's "signed out" page. */
function registeredLogoutTarget(ctx: EmulatorContext, uri: string | undefined, clientId: string | undefined): string | undefined {
  if (!uri) return undefined;
  const named = clientId ? ctx.directory.apps.get(clientId) : undefined;
  const candidates = named ? [named] : [...ctx.directory.apps.values()];
  return candidates.some((a) => a.postLogoutRedirectUris.includes(uri) || a.redirectUris.includes(uri)) ? uri : undefined;
}

function finishLogout(ctx: EmulatorContext, reply: FastifyReply, session: SsoSession | undefined, q: FormFields): FastifyReply {
  ctx.sessions.endIfEmpty(session, reply);
  const target = registeredLogoutTarget(ctx, q.post_logout_redirect_uri, q.client_id);
  if (!target) return sendPage(reply, signedOutPage());
  const url = new URL(target);
  if (q.state !== undefined) url.searchParams.set('state', q.state);
  return reply.redirect(url.toString(), 302);
}
