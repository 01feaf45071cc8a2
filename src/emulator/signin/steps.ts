import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import { formFields, type FormFields } from '../form.ts';
import { newSessionId } from '../identity.ts';
import { SignInPageError } from './answers.ts';
import { continueAs } from './after-sign-in.ts';
import { answerConsent } from './consent.ts';
import { showSignIn } from './screens.ts';
import { accountKey, userOf, type SsoSession } from './sso-session.ts';
import type { SignInTransaction } from './transaction.ts';

/** A form posted by one of the pages (sign in, pick an account, consent, approval), answered by its step. */
export async function answerStep(ctx: EmulatorContext, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const body = formFields(request.body);
  const txn = ctx.signIns.find(body.txn);
  if (!txn) throw new SignInPageError(50089, 'Your sign-in request has expired or is not valid. Go back to the application and sign in again.');
  const session = ctx.sessions.of(request);
  switch (body.step) {
    case 'login':
      return signInWithPassword(ctx, request, reply, txn, body);
    case 'pick':
      return pickAccount(ctx, reply, txn, session, body);
    case 'consent':
    case 'approval':
      return consentStep(ctx, reply, txn, session, body);
    default:
      return showSignIn(ctx, reply, txn);
  }
}

function signInWithPassword(ctx: EmulatorContext, request: FastifyRequest, reply: FastifyReply, txn: SignInTransaction, body: FormFields): FastifyReply {
  const username = (body.username ?? '').trim();
  const domain = username.includes('@') ? username.slice(username.lastIndexOf('@') + 1) : '';
  if (!domain || !ctx.directory.findTenant(domain)) {
    return showSignIn(ctx, reply, txn, { username, error: "We couldn't find an account with that username. Try another, or get a new account." });
  }
  const found = ctx.directory.findUserByUpn(username);
  if (!found || found.user.password !== (body.password ?? '')) {
    return showSignIn(ctx, reply, txn, { username, error: "Your account or password is incorrect. If you don't remember your password, reset it now." });
  }
  if (!found.user.props.accountEnabled) {
    return showSignIn(ctx, reply, txn, { username, error: 'Your account has been locked. Contact your support person to unlock it, then try again.' });
  }
  const account = ctx.sessions.remember(ctx.sessions.ensure(request, reply), found.tenant, found.user, newSessionId);
  return continueAs(ctx, reply, txn, account, false);
}

function pickAccount(ctx: EmulatorContext, reply: FastifyReply, txn: SignInTransaction, session: SsoSession | undefined, body: FormFields): FastifyReply {
  if (body.account === 'other' || !body.account) return showSignIn(ctx, reply, txn);
  const account = ctx.sessions.liveAccounts(session).find((l) => accountKey(l.account) === body.account)?.account;
  if (!account) return showSignIn(ctx, reply, txn);
  return continueAs(ctx, reply, txn, account, false);
}

function consentStep(ctx: EmulatorContext, reply: FastifyReply, txn: SignInTransaction, session: SsoSession | undefined, body: FormFields): FastifyReply {
  // Only the browser that signed in may answer the consent screen, and only the page it was shown.
  const account = txn.user;
  const found = account ? userOf(ctx.directory, account) : undefined;
  const inSession = account && session?.accounts.some((a) => a.tenantId === account.tenantId && a.userId === account.userId);
  if (!account || !found || !inSession || txn.stage !== body.step) return showSignIn(ctx, reply, txn);
  return answerConsent(ctx, reply, txn, { account, ...found }, body);
}
