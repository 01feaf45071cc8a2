import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EntraApp } from '../identity/entra-app.ts';
import type { IdTokenValidator } from '../identity/id-token.ts';
import type { Store } from '../store/database.ts';
import type { AuthRequestRepository } from '../store/auth-requests.ts';
import type { SessionRepository } from '../store/sessions.ts';
import type { TenantRecord, TenantRepository } from '../store/tenants.ts';
import type { UserRecord, UserRepository } from '../store/users.ts';
import type { TenantOnboarding } from '../tenants/onboarding.ts';

/** The signed-in person, as Roster's own records describe them. */
export interface Viewer {
  sessionId: string;
  tenant: TenantRecord;
  user: UserRecord;
  name: string;
  tenantName: string;
  csrfToken: string;
  loginHint: string | null;
}

export interface WebContext {
  publicUrl: URL;
  secureCookies: boolean;
  cookieNames: { session: string; binding: string };
  entra: EntraApp;
  validator: IdTokenValidator;
  onboarding: TenantOnboarding;
  onTenantActivated: (tenantId: string) => void;
  store: Store;
  tenants: TenantRepository;
  users: UserRepository;
  sessions: SessionRepository;
  authRequests: AuthRequestRepository;
  now: () => number;
  render(reply: FastifyReply, template: string, data: Record<string, unknown>, status?: number): FastifyReply;
  /** Shows a message page (errors, refusals, confirmations). */
  message(
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    page: { title: string; heading?: string; message: string; next?: string; tone?: 'bad' | 'ok' | 'info'; links?: { href: string; label: string; primary?: boolean }[] },
  ): FastifyReply;
  /** The random value that ties a sign-in or sign-up to this browser; set when missing. */
  browserBinding(request: FastifyRequest, reply: FastifyReply): string;
}

declare module 'fastify' {
  interface FastifyRequest {
    viewer: Viewer | null;
  }
}
