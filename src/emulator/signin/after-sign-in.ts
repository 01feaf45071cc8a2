import type { FastifyReply } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import type { SignedInUser } from '../grants.ts';
import { CODE_LIFETIME_SECONDS, randomToken } from '../identity.ts';
import type { AppRegistration, Tenant, UserRecord } from '../model.ts';
import { AppRedirectError, sendToApp } from './answers.ts';
import { showApproval, showConsent, showSignIn } from './screens.ts';
import { userOf } from './sso-session.ts';
import type { SignInTransaction } from './transaction.ts';

/**
 * The person at the browser is known (typed a password, picked an account, or
 * was signed in silently): let them in as themselves or as their guest object,
 * then consent, approval or the code, whichever the tenant's state calls for.
 */
export function continueAs(ctx: EmulatorContext, reply: FastifyReply, txn: SignInTransaction, account: SignedInUser, silent: boolean): FastifyReply {
  const found = userOf(ctx.directory, account);
  if (!found) return showSignIn(ctx, reply, txn);
  const { tenant, user } = found;
  txn.user = account;
  const registration = ctx.directory.requireApp(txn.appId);
  if (txn.path.kind === 'tenant' && txn.path.tenant.id !== tenant.id) {
    // B2B: a guest object in the resource tenant lets the home account in.
    const guest = guestOf(txn.path.tenant, user);
    if (!guest) throw wrongDirectory(txn, registration, tenant, user, txn.path.tenant.displayName);
    return continueAs(ctx, reply, txn, { tenantId: txn.path.tenant.id, userId: guest.props.id, sid: account.sid }, silent);
  }
  if (registration.signInAudience === 'AzureADMyOrg' && registration.homeTenantId && registration.homeTenantId !== tenant.id) {
    throw wrongDirectory(txn, registration, tenant, user, registration.homeTenantId);
  }
  if (txn.kind === 'adminconsent') return user.admin ? showConsent(ctx, reply, txn, user, tenant) : showApproval(ctx, reply, txn, user);
  // Microsoft's own clients (the device code flow's public client) are consented in every tenant.
  const sp = tenant.servicePrincipals.get(registration.appId) ?? (registration.firstParty ? ctx.directory.ensureServicePrincipal(tenant, registration) : undefined);
  if (sp && txn.prompt !== 'consent') return issueCode(ctx, reply, txn, account);
  if (silent) throw consentRequired(txn, registration);
  if (!sp && !user.admin) return showApproval(ctx, reply, txn, user);
  return showConsent(ctx, reply, txn, user, tenant);
}

/** The end of a sign-in: a one-time code for the app's redirect URI. */
export function issueCode(ctx: EmulatorContext, reply: FastifyReply, txn: SignInTransaction, account: SignedInUser): FastifyReply {
  ctx.grants.pruneExpired(ctx.clock.nowMs());
  const code = randomToken(64);
  ctx.grants.codes.set(code, {
    ...account,
    clientId: txn.appId,
    redirectUri: txn.redirectUri,
    pathTenant: txn.path.segment,
    scopes: txn.scopes,
    nonce: txn.nonce,
    codeChallenge: txn.codeChallenge,
    codeChallengeMethod: txn.codeChallengeMethod,
    expiresAtMs: ctx.clock.nowMs() + CODE_LIFETIME_SECONDS * 1000,
    redeemed: false,
  });
  ctx.signIns.finish(txn);
  return sendToApp(reply, txn, { code, state: txn.state, session_state: account.sid });
}

/** The guest object (userType Guest) that stands for `home` in `resource`, matched on mail or UPN. */
function guestOf(resource: Tenant, home: UserRecord): UserRecord | undefined {
  const names = new Set([home.props.userPrincipalName.toLowerCase(), (home.props.mail ?? '').toLowerCase()]);
  return resource.users.find((u) => u.props.userType === 'Guest' && u.props.accountEnabled && names.has((u.props.mail ?? '').toLowerCase()));
}

function wrongDirectory(txn: SignInTransaction, registration: AppRegistration, tenant: Tenant, user: UserRecord, resourceTenant: string): AppRedirectError {
  return new AppRedirectError(
    txn,
    'access_denied',
    50020,
    `User account '${user.props.userPrincipalName}' from identity provider 'https://sts.windows.net/${tenant.id}/' does not exist in tenant '${resourceTenant}' and cannot access the application '${registration.appId}'(${registration.displayName}) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.`,
  );
}

function consentRequired(txn: SignInTransaction, registration: AppRegistration): AppRedirectError {
  return new AppRedirectError(
    txn,
    'consent_required',
    65001,
    `The user or administrator has not consented to use the application with ID '${registration.appId}' named '${registration.displayName}'. Send an interactive authorization request for this user and resource.`,
  );
}
