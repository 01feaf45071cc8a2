import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { EntraApp } from '../identity/entra-app.ts';
import type { IdTokenValidator } from '../identity/id-token.ts';
import type { WebRepositories } from '../store/repositories.ts';
import type { TenantRecord } from '../store/tenants.ts';
import type { UserRecord } from '../store/users.ts';
import type { TenantOnboarding } from '../tenants/onboarding.ts';
import type { TenantLifecycle } from '../tenants/lifecycle.ts';
import type { AuditRepository } from '../store/audit.ts';
import type { ApiKeys } from '../tenants/api-keys.ts';
import type { OperatorActions } from '../tenants/operator-actions.ts';
import type { OperatorIdentity } from '../config/config.ts';
import type { WebhookEndpoints } from '../events/endpoints.ts';
import type { GroupRoles } from '../tenants/group-roles.ts';

/** What the pages may ask of directory sync; the runs themselves happen in the sync daemon. */
export interface SyncControl {
  /** Starts (or queues, with workers) a sync of the tenant unless one is under way; returns at once. */
  requestSync(tenantId: string, options?: { full?: boolean }): void;
  confirmHeldDeletion(tenantId: string): Promise<number>;
  discardHeldDeletion(tenantId: string): Promise<void>;
  /** A tenant was suspended, resumed, disconnected or left: its Graph subscriptions follow at once. */
  tenantStateChanged?(tenantId: string): void;
}

/** The signed-in person, as Roster's own records describe them. */
export interface Viewer {
  sessionId: string;
  tenant: TenantRecord;
  user: UserRecord;
  name: string;
  tenantName: string;
  csrfToken: string;
  loginHint: string | null;
  /** Roster's own record makes someone an admin of their tenant (never a token claim). */
  isAdmin: boolean;
  /** Listed in OPERATORS by `(tid, oid)`. */
  isOperator: boolean;
  /** Directory role template ids (`wids`) of this session's sign-in: facts about Entra, granting nothing in Roster by themselves. */
  directoryRoles: string[];
}

/** Who may reach a route: any signed-in person, Roster admins of their tenant, or operators. */
export type Access = 'member' | 'admin' | 'operator';

export interface MessagePage {
  title: string;
  heading?: string;
  message: string;
  next?: string;
  tone?: 'bad' | 'ok' | 'info';
  links?: { href: string; label: string; primary?: boolean }[];
}

/** What every page plugin shares: Roster's layout, message pages, the access guards and the clock. */
export interface Pages {
  render(reply: FastifyReply, template: string, data: Record<string, unknown>, status?: number): FastifyReply;
  /** Shows HTML a plugin rendered itself (with its own escaping templates) inside Roster's layout. */
  page(reply: FastifyReply, page: { title: string; html: string; wide?: boolean }, status?: number): FastifyReply;
  /** Shows a message page (errors, refusals, confirmations). */
  message(request: FastifyRequest, reply: FastifyReply, status: number, page: MessagePage): FastifyReply;
  /** The preHandler a route declares: the session, the role, and the CSRF token of every POST. */
  guard(access: Access): preHandlerAsyncHookHandler;
  now(): number;
}

/** The repositories and services behind the pages, built in one place (no route sees the database itself). */
export interface PageServices extends WebRepositories {
  lifecycle: TenantLifecycle;
  sync: SyncControl;
  webhooks: WebhookEndpoints;
  /** Suspend, resume, sync now and held decisions, audited; shared with the API and the CLI. */
  actions: OperatorActions;
  apiKeys: ApiKeys;
  /** Read-only here: entries are written by the actions themselves. */
  audit: AuditRepository;
  /** Roles and access from Entra groups. */
  groupRoles: GroupRoles;
}

/** Everything the sign-in and sign-up routes use. */
export interface WebContext extends Pages, PageServices {
  publicUrl: URL;
  secureCookies: boolean;
  cookieNames: { session: string; binding: string };
  entra: EntraApp;
  validator: IdTokenValidator;
  onboarding: TenantOnboarding;
  operators: readonly OperatorIdentity[];
  /** The random value that ties a sign-in or sign-up to this browser; set when missing. */
  browserBinding(request: FastifyRequest, reply: FastifyReply): string;
}

declare module 'fastify' {
  interface FastifyRequest {
    viewer: Viewer | null;
  }
}
