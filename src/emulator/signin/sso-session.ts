import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SignedInUser } from '../grants.ts';
import { parseLoginHint, randomToken } from '../identity.ts';
import type { Directory, Tenant, UserRecord } from '../model.ts';
import type { AccountTile } from '../views.ts';

/** One browser's sign-in session on the emulator's pages (the SSO cookie points here). */
export interface SsoSession {
  id: string;
  accounts: SignedInUser[];
}

/** A session account whose user still exists and may sign in. */
export interface LiveAccount {
  account: SignedInUser;
  tenant: Tenant;
  user: UserRecord;
}

/** The browser sessions behind the `ESTSAUTH` cookie: which accounts each browser has signed in. */
export class SsoSessions {
  readonly #sessions = new Map<string, SsoSession>();
  readonly #directory: Directory;
  readonly #pagesUrl: () => string;

  constructor(directory: Directory, pagesUrl: () => string) {
    this.#directory = directory;
    this.#pagesUrl = pagesUrl;
  }

  /** One cookie per emulator port, so two emulators on one machine do not share sessions. */
  get cookieName(): string {
    return `ESTSAUTH_${new URL(this.#pagesUrl()).port}`;
  }

  of(request: FastifyRequest): SsoSession | undefined {
    for (const part of (request.headers.cookie ?? '').split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      if (part.slice(0, eq).trim() === this.cookieName) return this.#sessions.get(part.slice(eq + 1).trim());
    }
    return undefined;
  }

  ensure(request: FastifyRequest, reply: FastifyReply): SsoSession {
    const existing = this.of(request);
    if (existing) return existing;
    const session: SsoSession = { id: randomToken(24), accounts: [] };
    this.#sessions.set(session.id, session);
    reply.header('set-cookie', `${this.cookieName}=${session.id}; Path=/; HttpOnly; SameSite=Lax`);
    return session;
  }

  /** Adds (or finds) the account of a user who just typed their password. */
  remember(session: SsoSession, tenant: Tenant, user: UserRecord, newSid: () => string): SignedInUser {
    let account = session.accounts.find((a) => a.tenantId === tenant.id && a.userId === user.props.id);
    if (!account) {
      account = { tenantId: tenant.id, userId: user.props.id, sid: newSid() };
      session.accounts.push(account);
    }
    return account;
  }

  /** Forgets a session with no accounts left, and clears its cookie. */
  endIfEmpty(session: SsoSession | undefined, reply: FastifyReply): void {
    if (!session || session.accounts.length > 0) return;
    this.#sessions.delete(session.id);
    reply.header('set-cookie', `${this.cookieName}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`);
  }

  liveAccounts(session: SsoSession | undefined): LiveAccount[] {
    const live: LiveAccount[] = [];
    for (const account of session?.accounts ?? []) {
      const found = userOf(this.#directory, account);
      if (found && found.user.props.accountEnabled) live.push({ account, ...found });
    }
    return live;
  }

  tiles(session: SsoSession | undefined): AccountTile[] {
    return this.liveAccounts(session).map(({ account, user }) => ({
      value: accountKey(account),
      name: user.props.displayName,
      upn: user.props.userPrincipalName,
    }));
  }

  /** The session account a `login_hint` (UPN or our opaque hint) or `sid` names. */
  hintedAccount(session: SsoSession | undefined, hint: string | undefined, sid?: string): SignedInUser | undefined {
    const live = this.liveAccounts(session);
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
}

/** How an account is named in the pages' forms: `tenantId:userId`. */
export function accountKey(account: SignedInUser): string {
  return `${account.tenantId}:${account.userId}`;
}

/** The tenant and user behind a signed-in account, if both still exist. */
export function userOf(directory: Directory, account: SignedInUser): { tenant: Tenant; user: UserRecord } | undefined {
  const tenant = directory.tenants.get(account.tenantId);
  const user = tenant?.usersById.get(account.userId);
  return tenant && user ? { tenant, user } : undefined;
}
