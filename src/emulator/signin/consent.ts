import type { FastifyReply } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import type { FormFields } from '../form.ts';
import type { SignedInUser } from '../grants.ts';
import type { Tenant, UserRecord } from '../model.ts';
import { AppRedirectError, sendToApp } from './answers.ts';
import { issueCode } from './after-sign-in.ts';
import { showApproval } from './screens.ts';
import type { SignInTransaction } from './transaction.ts';

/** The person's answer on the consent screen (accept or cancel) or the "need admin approval" page. */
export function answerConsent(
  ctx: EmulatorContext,
  reply: FastifyReply,
  txn: SignInTransaction,
  signedIn: { account: SignedInUser; tenant: Tenant; user: UserRecord },
  body: FormFields,
): FastifyReply {
  const { account, tenant, user } = signedIn;
  ctx.signIns.finish(txn);
  const registration = ctx.directory.requireApp(txn.appId);
  if (body.step === 'approval') {
    throw new AppRedirectError(
      txn,
      'access_denied',
      90094,
      `An administrator of ${tenant.displayName} has set a policy that prevents you from granting ${registration.displayName} the permissions it is requesting. Contact an administrator of ${tenant.displayName}, who can grant permissions to this app on your behalf.`,
    );
  }
  if (body.decision !== 'accept') {
    throw new AppRedirectError(txn, 'access_denied', 65004, 'User declined to consent to access the app.', { error_subcode: 'cancel' });
  }
  if (txn.kind === 'adminconsent') {
    if (!user.admin) return showApproval(ctx, reply, txn, user);
    const sp = ctx.directory.grantAdminConsent(tenant, registration);
    const granted = sp.appRoles.map((role) => `https://graph.microsoft.com/${role}`).join(' ');
    return sendToApp(reply, txn, { admin_consent: 'True', tenant: tenant.id, scope: granted || txn.scopeParam, state: txn.state });
  }
  if (!tenant.servicePrincipals.has(registration.appId) && !user.admin) return showApproval(ctx, reply, txn, user);
  ctx.directory.ensureServicePrincipal(tenant, registration);
  return issueCode(ctx, reply, txn, account);
}
