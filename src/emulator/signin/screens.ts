import type { FastifyReply } from 'fastify';
import { GRAPH_AUDIENCE, type EmulatorContext } from '../context.ts';
import { parseLoginHint } from '../identity.ts';
import type { Tenant, UserRecord } from '../model.ts';
import { accountPickerPage, approvalRequiredPage, consentPage, signInPage, type PermissionLine } from '../views.ts';
import { sendPage } from './answers.ts';
import type { SsoSession } from './sso-session.ts';
import type { SignInTransaction } from './transaction.ts';

/** What each permission does, in the words of the consent screen. */
const PERMISSION_LABELS: Record<string, string> = {
  'user.read.all': "Read all users' full profiles",
  'user.readbasic.all': "Read all users' basic profiles",
  'user.read': 'Sign you in and read your profile',
  'directory.read.all': 'Read directory data',
  'group.read.all': 'Read all groups',
  'groupmember.read.all': 'Read all group memberships',
  'organization.read.all': 'Read organization information',
  openid: 'Sign you in',
  profile: 'View your basic profile',
  email: 'View your email address',
  offline_access: 'Maintain access to data you have given it access to',
};

function permissionLines(names: string[]): PermissionLine[] {
  return names.map((value) => ({ value, label: PERMISSION_LABELS[value.toLowerCase()] ?? value }));
}

const GRAPH_PREFIX = `${GRAPH_AUDIENCE}/`;

/** Delegated permissions a consent screen lists for an authorize request (Graph scopes plus the OpenID ones). */
function delegatedNames(scopes: string[]): string[] {
  const names: string[] = [];
  for (const scope of scopes) {
    const name = scope.toLowerCase().startsWith(GRAPH_PREFIX) ? scope.slice(GRAPH_PREFIX.length) : scope;
    if (name === '.default' || names.includes(name)) continue;
    names.push(name);
  }
  if (!names.some((n) => n.toLowerCase() === 'user.read')) names.unshift('User.Read');
  return names;
}

function appNameOf(ctx: EmulatorContext, txn: SignInTransaction): string {
  return ctx.directory.requireApp(txn.appId).displayName;
}

export function showSignIn(ctx: EmulatorContext, reply: FastifyReply, txn: SignInTransaction, options: { username?: string | undefined; error?: string } = {}): FastifyReply {
  txn.stage = 'login';
  // A UPN hint fills the field; our opaque hint names an account, not something to show.
  const username = options.username ?? (txn.loginHint && !parseLoginHint(txn.loginHint) ? txn.loginHint : undefined);
  return sendPage(
    reply,
    signInPage({
      action: txn.action,
      txn: txn.id,
      appName: appNameOf(ctx, txn),
      ...(username ? { username } : {}),
      ...(options.error ? { error: options.error } : {}),
      ...(txn.kind === 'adminconsent' ? { note: 'Use an administrator account of your organization to grant access.' } : {}),
    }),
  );
}

export function showPicker(ctx: EmulatorContext, reply: FastifyReply, txn: SignInTransaction, session: SsoSession | undefined): FastifyReply {
  txn.stage = 'pick';
  return sendPage(reply, accountPickerPage({ action: txn.action, txn: txn.id, appName: appNameOf(ctx, txn), accounts: ctx.sessions.tiles(session) }));
}

/** "Need admin approval": a member cannot consent for an app the organisation has not approved. */
export function showApproval(ctx: EmulatorContext, reply: FastifyReply, txn: SignInTransaction, user: UserRecord): FastifyReply {
  txn.stage = 'approval';
  const registration = ctx.directory.requireApp(txn.appId);
  const names = txn.kind === 'adminconsent' ? registration.requiredAppRoles : txn.scopes;
  return sendPage(
    reply,
    approvalRequiredPage({ action: txn.action, txn: txn.id, appName: registration.displayName, upn: user.props.userPrincipalName, permissions: permissionLines(names) }),
  );
}

export function showConsent(ctx: EmulatorContext, reply: FastifyReply, txn: SignInTransaction, user: UserRecord, tenant: Tenant): FastifyReply {
  txn.stage = 'consent';
  const registration = ctx.directory.requireApp(txn.appId);
  const names = txn.kind === 'adminconsent' ? registration.requiredAppRoles : delegatedNames(txn.scopes);
  return sendPage(
    reply,
    consentPage({
      action: txn.action,
      txn: txn.id,
      appName: registration.displayName,
      upn: user.props.userPrincipalName,
      permissions: permissionLines(names),
      forOrganization: txn.kind === 'adminconsent',
      tenantName: tenant.displayName,
    }),
  );
}
