import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../context.ts';
import {
  CODE_LIFETIME_SECONDS,
  identityState,
  newSessionId,
  parseLoginHint,
  pruneExpired,
  randomToken,
  resolvePathTenant,
  splitScopes,
  type PathTenant,
  type SignedInUser,
  type SsoSession,
} from '../identity.ts';
import type { AppRegistration, Tenant, UserRecord } from '../model.ts';
import {
  accountPickerPage,
  approvalRequiredPage,
  consentPage,
  errorPage,
  formPostPage,
  logoutPickerPage,
  signedOutPage,
  signInPage,
  type AccountTile,
  type PermissionLine,
} from '../views.ts';

type ResponseMode = 'query' | 'fragment' | 'form_post';

/** A sign-in in progress: the validated request, kept server-side under a random id. */
interface Transaction {
  id: string;
  kind: 'authorize' | 'adminconsent';
  path: PathTenant;
  action: string;
  appId: string;
  redirectUri: string;
  responseMode: ResponseMode;
  state: string | undefined;
  scopes: string[];
  /** The raw `scope` parameter (admin consent echoes what it granted). */
  scopeParam: string;
  nonce: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string | undefined;
  prompt: string | undefined;
  loginHint: string | undefined;
  expiresAtMs: number;
  /** Set once the person has authenticated. */
  user?: SignedInUser;
  stage: 'login' | 'pick' | 'consent' | 'approval';
}

/** Thrown inside a handler: show the emulator's own error page (not redirected to the app). */
class PageError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

const TRANSACTION_LIFETIME_MS = 30 * 60_000;

/** What each permission does, in the words of the consent screen. */
const PERMISSION_LABELS: Record<string, string> = {
  'user.read.all': "Read all users' full profiles",
  'user.readbasic.all': "Read all users' basic profiles",
  'user.read': 'Sign you in and read your profile',
  'directory.read.all': 'Read directory data',
  'group.read.all': 'Read all groups',
  'organization.read.all': 'Read organization information',
  openid: 'Sign you in',
  profile: 'View your basic profile',
  email: 'View your email address',
  offline_access: "Maintain access to data you have given it access to",
};

function permissionLines(names: string[]): PermissionLine[] {
  return names.map((value) => ({ value, label: PERMISSION_LABELS[value.toLowerCase()] ?? value }));
}

type Query = Record<string, string | undefined>;

function flatten(input: unknown): Query {
  const out: Query = {};
  if (input && typeof input === 'object') {
    for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
      if (typeof value === 'string') out[key] = value;
      else if (Array.isArray(value) && typeof value[0] === 'string') out[key] = value[0];
    }
  }
  return out;
}

export function registerAuthorizeRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  const state = identityState(ctx);
  const transactions = state.transactions as Map<string, Transaction>;
  const cookieName = (): string => `ESTSAUTH_${new URL(ctx.urls.pages).port}`;

  // ---- SSO session cookie ---------------------------------------------------

  function sessionOf(request: FastifyRequest): SsoSession | undefined {
    const header = request.headers.cookie ?? '';
    for (const part of header.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      if (part.slice(0, eq).trim() === cookieName()) return state.sessions.get(part.slice(eq + 1).trim());
    }
    return undefined;
  }

  function ensureSession(request: FastifyRequest, reply: FastifyReply): SsoSession {
    const existing = sessionOf(request);
    if (existing) return existing;
    const session: SsoSession = { id: randomToken(24), accounts: [] };
    state.sessions.set(session.id, session);
    reply.header('set-cookie', `${cookieName()}=${session.id}; Path=/; HttpOnly; SameSite=Lax`);
    return session;
  }

  /** Accounts of the session whose users still exist and may sign in. */
  function liveAccounts(session: SsoSession | undefined): Array<{ account: SignedInUser; tenant: Tenant; user: UserRecord }> {
    const out: Array<{ account: SignedInUser; tenant: Tenant; user: UserRecord }> = [];
    for (const account of session?.accounts ?? []) {
      const tenant = ctx.directory.tenants.get(account.tenantId);
      const user = tenant?.usersById.get(account.userId);
      if (tenant && user && user.props.accountEnabled) out.push({ account, tenant, user });
    }
    return out;
  }

  function tiles(session: SsoSession | undefined): AccountTile[] {
    return liveAccounts(session).map(({ account, user }) => ({
      value: `${account.tenantId}:${account.userId}`,
      name: user.props.displayName,
      upn: user.props.userPrincipalName,
    }));
  }

  /** The session account a `login_hint` (UPN or our opaque hint) or `sid` names. */
  function hintedAccount(session: SsoSession | undefined, hint: string | undefined, sid?: string): SignedInUser | undefined {
    const live = liveAccounts(session);
    if (sid) {
      const bySid = live.find((l) => l.account.sid === sid);
      if (bySid) return bySid.account;
    }
    if (!hint) return undefined;
    const opaque = parseLoginHint(hint);
    const match = live.find((l) =>
      opaque ? l.account.tenantId === opaque.tid && l.account.userId === opaque.oid : l.user.props.userPrincipalName.toLowerCase() === hint.toLowerCase(),
    );
    return match?.account;
  }

  // ---- answers to the app ---------------------------------------------------

  function sendToApp(reply: FastifyReply, txn: Pick<Transaction, 'redirectUri' | 'responseMode'>, params: Record<string, string | undefined>): FastifyReply {
    const clean: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) if (v !== undefined) clean[k] = v;
    if (txn.responseMode === 'form_post') return reply.type('text/html; charset=utf-8').send(formPostPage(txn.redirectUri, clean));
    const url = new URL(txn.redirectUri);
    if (txn.responseMode === 'fragment') url.hash = new URLSearchParams(clean).toString();
    else for (const [k, v] of Object.entries(clean)) url.searchParams.set(k, v);
    return reply.redirect(url.toString(), 302);
  }

  function sendError(
    reply: FastifyReply,
    txn: Pick<Transaction, 'redirectUri' | 'responseMode' | 'state'>,
    error: string,
    code: number,
    message: string,
    extra: Record<string, string> = {},
  ): FastifyReply {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = new Date(ctx.clock.nowMs()).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    return sendToApp(reply, txn, {
      error,
      error_description: `AADSTS${code}: ${message}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
      ...extra,
      state: txn.state,
    });
  }

  function sendPage(reply: FastifyReply, html: string, status = 200): FastifyReply {
    return reply
      .code(status)
      .header('cache-control', 'no-store')
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .type('text/html; charset=utf-8')
      .send(html);
  }

  function sendPageError(reply: FastifyReply, err: PageError): FastifyReply {
    return sendPage(reply, errorPage({ code: err.code, description: err.message }), 400);
  }

  // ---- validation shared by authorize and admin consent ---------------------

  function validateClient(path: PathTenant | undefined, segment: string, q: Query): { path: PathTenant; app: AppRegistration; redirectUri: string } {
    if (!path) {
      throw new PageError(
        90002,
        `Tenant '${segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
      );
    }
    if (!q.client_id) throw new PageError(900144, "The request body must contain the following parameter: 'client_id'.");
    const registration = ctx.directory.apps.get(q.client_id);
    if (!registration) {
      throw new PageError(
        700016,
        `Application with identifier '${q.client_id}' was not found in the directory '${path.kind === 'tenant' ? path.tenant.displayName : segment}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      );
    }
    if (!q.redirect_uri) throw new PageError(900971, 'No reply address provided.');
    if (!registration.redirectUris.includes(q.redirect_uri)) {
      throw new PageError(
        50011,
        `The redirect URI '${q.redirect_uri}' specified in the request does not match the redirect URIs configured for the application '${registration.appId}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.`,
      );
    }
    return { path, app: registration, redirectUri: q.redirect_uri };
  }

  function newTransaction(init: Omit<Transaction, 'id' | 'expiresAtMs' | 'stage'>): Transaction {
    const now = Date.now();
    for (const [id, t] of transactions) if (t.expiresAtMs <= now) transactions.delete(id);
    const txn: Transaction = { ...init, id: randomToken(24), expiresAtMs: now + TRANSACTION_LIFETIME_MS, stage: 'login' };
    transactions.set(txn.id, txn);
    return txn;
  }

  function appOf(txn: Transaction): AppRegistration {
    return ctx.directory.requireApp(txn.appId);
  }

  function showSignIn(reply: FastifyReply, txn: Transaction, options: { username?: string | undefined; error?: string } = {}): FastifyReply {
    txn.stage = 'login';
    const username = options.username ?? (txn.loginHint && !parseLoginHint(txn.loginHint) ? txn.loginHint : undefined);
    return sendPage(
      reply,
      signInPage({
        action: txn.action,
        txn: txn.id,
        appName: appOf(txn).displayName,
        ...(username ? { username } : {}),
        ...(options.error ? { error: options.error } : {}),
        ...(txn.kind === 'adminconsent' ? { note: 'Use an administrator account of your organization to grant access.' } : {}),
      }),
    );
  }

  function showPicker(reply: FastifyReply, txn: Transaction, session: SsoSession | undefined): FastifyReply {
    txn.stage = 'pick';
    return sendPage(reply, accountPickerPage({ action: txn.action, txn: txn.id, appName: appOf(txn).displayName, accounts: tiles(session) }));
  }

  // ---- after authentication -------------------------------------------------

  function userFromDirectory(account: SignedInUser): { tenant: Tenant; user: UserRecord } | undefined {
    const tenant = ctx.directory.tenants.get(account.tenantId);
    const user = tenant?.usersById.get(account.userId);
    return tenant && user ? { tenant, user } : undefined;
  }

  function wrongDirectory(reply: FastifyReply, txn: Transaction, tenant: Tenant, user: UserRecord, resourceTenant: string): FastifyReply {
    const registration = appOf(txn);
    return sendError(
      reply,
      txn,
      'access_denied',
      50020,
      `User account '${user.props.userPrincipalName}' from identity provider 'https://sts.windows.net/${tenant.id}/' does not exist in tenant '${resourceTenant}' and cannot access the application '${registration.appId}'(${registration.displayName}) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.`,
    );
  }

  function proceed(reply: FastifyReply, txn: Transaction, account: SignedInUser, silent: boolean): FastifyReply {
    const found = userFromDirectory(account);
    if (!found) return showSignIn(reply, txn);
    const { tenant, user } = found;
    const registration = appOf(txn);
    txn.user = account;
    if (txn.path.kind === 'tenant' && txn.path.tenant.id !== tenant.id) {
      // B2B: a guest object in the resource tenant lets the home account in.
      const guest = guestOf(txn.path.tenant, user);
      if (!guest) return wrongDirectory(reply, txn, tenant, user, txn.path.tenant.displayName);
      return proceed(reply, txn, { tenantId: txn.path.tenant.id, userId: guest.props.id, sid: account.sid }, silent);
    }
    if (registration.signInAudience === 'AzureADMyOrg' && registration.homeTenantId && registration.homeTenantId !== tenant.id) {
      return wrongDirectory(reply, txn, tenant, user, registration.homeTenantId);
    }
    if (txn.kind === 'adminconsent') {
      if (!user.admin) return showApproval(reply, txn, user);
      return showConsent(reply, txn, user, tenant);
    }
    const sp = tenant.servicePrincipals.get(registration.appId);
    if (!sp || txn.prompt === 'consent') {
      if (silent) {
        return sendError(
          reply,
          txn,
          'consent_required',
          65001,
          `The user or administrator has not consented to use the application with ID '${registration.appId}' named '${registration.displayName}'. Send an interactive authorization request for this user and resource.`,
        );
      }
      if (!sp && !user.admin) return showApproval(reply, txn, user);
      return showConsent(reply, txn, user, tenant);
    }
    return issueCode(reply, txn, account);
  }

  function showApproval(reply: FastifyReply, txn: Transaction, user: UserRecord): FastifyReply {
    txn.stage = 'approval';
    const registration = appOf(txn);
    const names = txn.kind === 'adminconsent' ? registration.requiredAppRoles : txn.scopes;
    return sendPage(
      reply,
      approvalRequiredPage({ action: txn.action, txn: txn.id, appName: registration.displayName, upn: user.props.userPrincipalName, permissions: permissionLines(names) }),
    );
  }

  function showConsent(reply: FastifyReply, txn: Transaction, user: UserRecord, tenant: Tenant): FastifyReply {
    txn.stage = 'consent';
    const registration = appOf(txn);
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

  function issueCode(reply: FastifyReply, txn: Transaction, account: SignedInUser): FastifyReply {
    pruneExpired(ctx);
    const code = randomToken(64);
    state.codes.set(code, {
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
    transactions.delete(txn.id);
    return sendToApp(reply, txn, { code, state: txn.state, session_state: account.sid });
  }

  /** The app and redirect URI of a browser request, or the emulator's own error page (sent) when they are bad. */
  function validatedClientOrPage(tenantSegment: string, q: Query, reply: FastifyReply): ReturnType<typeof validateClient> | undefined {
    try {
      return validateClient(resolvePathTenant(ctx, tenantSegment), tenantSegment, q);
    } catch (err) {
      if (err instanceof PageError) {
        void sendPageError(reply, err);
        return undefined;
      }
      throw err;
    }
  }

  // ---- GET authorize --------------------------------------------------------

  app.get<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/authorize', async (request, reply) => {
    const q = flatten(request.query);
    const validated = validatedClientOrPage(request.params.tenant, q, reply);
    if (!validated) return reply;
    const { path, app: registration, redirectUri } = validated;
    const requestedMode = q.response_mode ?? 'query';
    const responseMode: ResponseMode = requestedMode === 'form_post' || requestedMode === 'fragment' ? requestedMode : 'query';
    const base = { redirectUri, responseMode, state: q.state };
    if (!['query', 'fragment', 'form_post'].includes(requestedMode)) {
      return sendError(reply, base, 'invalid_request', 70007, `The app returned an unsupported value of 'response_mode': '${requestedMode}'.`);
    }
    const responseType = q.response_type;
    if (!responseType) return sendError(reply, base, 'invalid_request', 900144, "The request body must contain the following parameter: 'response_type'.");
    if (responseType !== 'code') {
      const parts = responseType.split(' ');
      if (parts.includes('token')) return sendError(reply, base, 'unsupported_response_type', 700051, "response_type 'token' is not enabled for the application.");
      if (parts.includes('id_token')) return sendError(reply, base, 'unsupported_response_type', 700054, "response_type 'id_token' is not enabled for the application.");
      return sendError(reply, base, 'unsupported_response_type', 70005, `The app returned an unsupported response type '${responseType}'.`);
    }
    if (!q.scope) return sendError(reply, base, 'invalid_request', 900144, "The request body must contain the following parameter: 'scope'.");
    if (q.code_challenge_method !== undefined && !['S256', 'plain'].includes(q.code_challenge_method)) {
      return sendError(reply, base, 'invalid_request', 50149, 'Invalid Code_Challenge_method parameter.');
    }
    if (q.code_challenge !== undefined && (q.code_challenge.length < 43 || q.code_challenge.length > 128)) {
      return sendError(reply, base, 'invalid_request', 501491, 'Invalid size of Code_Challenge parameter.');
    }
    if (registration.disabled) {
      return sendError(reply, base, 'unauthorized_client', 7000112, `Application '${registration.appId}'(${registration.displayName}) is disabled.`);
    }
    if (path.kind === 'consumers') {
      return sendError(
        reply,
        base,
        'invalid_request',
        9002332,
        `Application '${registration.appId}'(${registration.displayName}) is configured for use by Azure Active Directory users only. Please do not use the /consumers endpoint to serve this request.`,
      );
    }
    const prompt = q.prompt?.toLowerCase();
    const txn = newTransaction({
      kind: 'authorize',
      path,
      action: `/${encodeURIComponent(request.params.tenant)}/oauth2/v2.0/authorize`,
      appId: registration.appId,
      ...base,
      scopes: splitScopes(q.scope),
      scopeParam: q.scope,
      nonce: q.nonce,
      codeChallenge: q.code_challenge,
      codeChallengeMethod: q.code_challenge ? (q.code_challenge_method ?? 'plain') : undefined,
      prompt,
      loginHint: q.login_hint,
    });
    const session = sessionOf(request);
    const live = liveAccounts(session);
    if (prompt === 'none') {
      const account = hintedAccount(session, q.login_hint, q.sid) ?? (live.length === 1 ? live[0]!.account : undefined);
      if (account) return proceed(reply, txn, account, true);
      transactions.delete(txn.id);
      if (live.length > 1) {
        return sendError(reply, txn, 'interaction_required', 16000, 'Multiple user identities are available for the current request. Please use a login_hint or select an account.');
      }
      return sendError(
        reply,
        txn,
        'login_required',
        50058,
        'A silent sign-in request was sent but no user is signed in. The cookies used to represent the user\'s session were not sent in the request to Azure AD.',
      );
    }
    if (prompt === 'login' || live.length === 0) return showSignIn(reply, txn);
    if (prompt !== 'select_account') {
      const hinted = hintedAccount(session, q.login_hint);
      if (hinted) return proceed(reply, txn, hinted, false);
    }
    return showPicker(reply, txn, session);
  });

  // ---- GET admin consent ----------------------------------------------------

  app.get<{ Params: { tenant: string } }>('/:tenant/v2.0/adminconsent', async (request, reply) => {
    const q = flatten(request.query);
    const validated = validatedClientOrPage(request.params.tenant, q, reply);
    if (!validated) return reply;
    const { path, app: registration, redirectUri } = validated;
    const base = { redirectUri, responseMode: 'query' as const, state: q.state };
    if (path.kind === 'common' || path.kind === 'consumers') {
      return sendError(reply, base, 'invalid_request', 9001023, 'The grant type isn\'t supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.');
    }
    if (registration.disabled) {
      return sendError(reply, base, 'unauthorized_client', 7000112, `Application '${registration.appId}'(${registration.displayName}) is disabled.`);
    }
    const scopeParam = q.scope ?? 'https://graph.microsoft.com/.default';
    const txn = newTransaction({
      kind: 'adminconsent',
      path,
      action: `/${encodeURIComponent(request.params.tenant)}/v2.0/adminconsent`,
      appId: registration.appId,
      ...base,
      scopes: splitScopes(scopeParam),
      scopeParam,
      nonce: undefined,
      codeChallenge: undefined,
      codeChallengeMethod: undefined,
      prompt: undefined,
      loginHint: q.login_hint,
    });
    const session = sessionOf(request);
    if (liveAccounts(session).length === 0) return showSignIn(reply, txn);
    return showPicker(reply, txn, session);
  });

  // ---- the steps of the pages (sign in, pick, consent, approval) ------------

  const onStep = async (request: FastifyRequest<{ Params: { tenant: string } }>, reply: FastifyReply) => {
    const body = flatten(request.body);
    const txn = body.txn ? transactions.get(body.txn) : undefined;
    if (!txn || txn.expiresAtMs <= Date.now()) {
      return sendPageError(reply, new PageError(50089, 'Your sign-in request has expired or is not valid. Go back to the application and sign in again.'));
    }
    const session = sessionOf(request);
    switch (body.step) {
      case 'login': {
        const username = (body.username ?? '').trim();
        const domain = username.includes('@') ? username.slice(username.lastIndexOf('@') + 1) : '';
        if (!domain || !ctx.directory.findTenant(domain)) {
          return showSignIn(reply, txn, { username, error: "We couldn't find an account with that username. Try another, or get a new account." });
        }
        const found = ctx.directory.findUserByUpn(username);
        if (!found || found.user.password !== (body.password ?? '')) {
          return showSignIn(reply, txn, { username, error: "Your account or password is incorrect. If you don't remember your password, reset it now." });
        }
        if (!found.user.props.accountEnabled) {
          return showSignIn(reply, txn, { username, error: 'Your account has been locked. Contact your support person to unlock it, then try again.' });
        }
        const sso = ensureSession(request, reply);
        let account = sso.accounts.find((a) => a.tenantId === found.tenant.id && a.userId === found.user.props.id);
        if (!account) {
          account = { tenantId: found.tenant.id, userId: found.user.props.id, sid: newSessionId() };
          sso.accounts.push(account);
        }
        return proceed(reply, txn, account, false);
      }
      case 'pick': {
        if (body.account === 'other' || !body.account) return showSignIn(reply, txn);
        const account = liveAccounts(session).find((l) => `${l.account.tenantId}:${l.account.userId}` === body.account)?.account;
        if (!account) return showSignIn(reply, txn);
        return proceed(reply, txn, account, false);
      }
      case 'consent':
      case 'approval': {
        // Only the browser that signed in may answer the consent screen.
        const account = txn.user;
        const found = account ? userFromDirectory(account) : undefined;
        const inSession = account && session?.accounts.some((a) => a.tenantId === account.tenantId && a.userId === account.userId);
        if (!account || !found || !inSession || txn.stage !== body.step) return showSignIn(reply, txn);
        transactions.delete(txn.id);
        const registration = appOf(txn);
        if (body.step === 'approval') {
          return sendError(
            reply,
            txn,
            'access_denied',
            90094,
            `An administrator of ${found.tenant.displayName} has set a policy that prevents you from granting ${registration.displayName} the permissions it is requesting. Contact an administrator of ${found.tenant.displayName}, who can grant permissions to this app on your behalf.`,
          );
        }
        if (body.decision !== 'accept') {
          return sendError(reply, txn, 'access_denied', 65004, 'User declined to consent to access the app.', { error_subcode: 'cancel' });
        }
        if (txn.kind === 'adminconsent') {
          if (!found.user.admin) return showApproval(reply, txn, found.user);
          const sp = ctx.directory.grantAdminConsent(found.tenant, registration);
          const granted = sp.appRoles.map((role) => `https://graph.microsoft.com/${role}`).join(' ');
          return sendToApp(reply, txn, { admin_consent: 'True', tenant: found.tenant.id, scope: granted || txn.scopeParam, state: txn.state });
        }
        if (!found.tenant.servicePrincipals.has(registration.appId) && !found.user.admin) return showApproval(reply, txn, found.user);
        ctx.directory.ensureServicePrincipal(found.tenant, registration);
        return issueCode(reply, txn, account);
      }
      default:
        return showSignIn(reply, txn);
    }
  };
  app.post('/:tenant/oauth2/v2.0/authorize', onStep);
  app.post('/:tenant/v2.0/adminconsent', onStep);

  // ---- logout ---------------------------------------------------------------

  function registeredLogoutTarget(uri: string | undefined, clientId: string | undefined): string | undefined {
    if (!uri) return undefined;
    const candidates = clientId && ctx.directory.apps.has(clientId) ? [ctx.directory.apps.get(clientId)!] : [...ctx.directory.apps.values()];
    return candidates.some((a) => a.postLogoutRedirectUris.includes(uri) || a.redirectUris.includes(uri)) ? uri : undefined;
  }

  function finishLogout(request: FastifyRequest, reply: FastifyReply, session: SsoSession | undefined, q: Query): FastifyReply {
    if (session && session.accounts.length === 0) {
      state.sessions.delete(session.id);
      reply.header('set-cookie', `${cookieName()}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`);
    }
    const target = registeredLogoutTarget(q.post_logout_redirect_uri, q.client_id);
    if (!target) return sendPage(reply, signedOutPage());
    const url = new URL(target);
    if (q.state !== undefined) url.searchParams.set('state', q.state);
    return reply.redirect(url.toString(), 302);
  }

  function signOut(session: SsoSession | undefined, match: (a: SignedInUser) => boolean): void {
    if (session) session.accounts = session.accounts.filter((a) => !match(a));
  }

  app.get<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/logout', async (request, reply) => {
    const q = flatten(request.query);
    const session = sessionOf(request);
    if (q.logout_hint) {
      const hint = parseLoginHint(q.logout_hint);
      const lower = q.logout_hint.toLowerCase();
      signOut(session, (a) => {
        if (hint) return a.tenantId === hint.tid && a.userId === hint.oid;
        return userFromDirectory(a)?.user.props.userPrincipalName.toLowerCase() === lower;
      });
      return finishLogout(request, reply, session, q);
    }
    const accounts = tiles(session);
    if (!session || accounts.length === 0) {
      signOut(session, () => true);
      return finishLogout(request, reply, session, q);
    }
    const fields: Record<string, string> = {};
    for (const key of ['post_logout_redirect_uri', 'client_id', 'state'] as const) {
      const value = q[key];
      if (value !== undefined) fields[key] = value;
    }
    return sendPage(reply, logoutPickerPage({ action: `/${encodeURIComponent(request.params.tenant)}/oauth2/v2.0/logout`, accounts, fields }));
  });

  app.post<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/logout', async (request, reply) => {
    const body = flatten(request.body);
    const session = sessionOf(request);
    signOut(session, (a) => `${a.tenantId}:${a.userId}` === body.account);
    return finishLogout(request, reply, session, body);
  });
}

/** The guest object (userType Guest) that stands for `home` in `resource`, matched on mail or UPN. */
function guestOf(resource: Tenant, home: UserRecord): UserRecord | undefined {
  const names = new Set([home.props.userPrincipalName.toLowerCase(), (home.props.mail ?? '').toLowerCase()]);
  return resource.users.find((u) => u.props.userType === 'Guest' && u.props.accountEnabled && names.has((u.props.mail ?? '').toLowerCase()));
}

/** Delegated permissions a consent screen lists for an authorize request (Graph scopes plus the OpenID ones). */
function delegatedNames(scopes: string[]): string[] {
  const names: string[] = [];
  for (const scope of scopes) {
    const name = scope.toLowerCase().startsWith('https://graph.microsoft.com/') ? scope.slice('https://graph.microsoft.com/'.length) : scope;
    if (name === '.default' || names.includes(name)) continue;
    names.push(name);
  }
  if (!names.some((n) => n.toLowerCase() === 'user.read')) names.unshift('User.Read');
  return names;
}
