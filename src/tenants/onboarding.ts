import { GraphError, graphClientFor, readOrganization } from '../directory/graph.ts';
import type { EntraApp } from '../identity/entra-app.ts';
import { AppNotInTenantError, ConsentMissingError, IdentityError } from '../identity/errors.ts';
import type { OutboundHttp } from '../identity/http.ts';
import type { TenantRecord, TenantRepository } from '../store/tenants.ts';

export type ConfirmOutcome =
  | { kind: 'active'; tenant: TenantRecord }
  /** Consent was granted moments ago and has not reached the token endpoint or Graph yet. */
  | { kind: 'propagating'; detail: string }
  /** The directory Graph answered for is not the one the callback named. */
  | { kind: 'mismatch'; detail: string }
  | { kind: 'failed'; detail: string };

/**
 * Registers a customer organisation only once Roster has proved, with its own
 * app token for that tenant, that consent was granted there and that Graph
 * reports the same tenant id. The callback's `tenant` parameter alone proves
 * nothing: anyone can craft that redirect.
 */
export class TenantOnboarding {
  readonly #tenants: TenantRepository;
  readonly #entra: EntraApp;
  readonly #http: OutboundHttp;
  readonly #graphBaseUrl: URL;
  readonly #now: () => number;

  constructor(options: { tenants: TenantRepository; entra: EntraApp; http: OutboundHttp; graphBaseUrl: URL; now?: () => number }) {
    this.#tenants = options.tenants;
    this.#entra = options.entra;
    this.#http = options.http;
    this.#graphBaseUrl = options.graphBaseUrl;
    this.#now = options.now ?? Date.now;
  }

  async confirm(tenantId: string, signup: { signedUpByOid: string | null; signupContext: Record<string, unknown> | null }): Promise<ConfirmOutcome> {
    const id = tenantId.toLowerCase();
    let token: string;
    try {
      token = (await this.#entra.appToken(id, { forceRefresh: true })).accessToken;
    } catch (err) {
      const detail = describeError(err);
      // Just after consent, "not in the tenant" and "no consent" mean "not arrived yet".
      if (err instanceof AppNotInTenantError || err instanceof ConsentMissingError) {
        await this.#tenants.markPending(id, this.#now());
        return { kind: 'propagating', detail };
      }
      return { kind: 'failed', detail };
    }

    let organization;
    try {
      organization = await readOrganization(graphClientFor({ http: this.#http, graphBaseUrl: this.#graphBaseUrl, accessToken: async () => token }));
    } catch (err) {
      if (err instanceof GraphError && (err.statusCode === 401 || err.statusCode === 403)) {
        await this.#tenants.markPending(id, this.#now());
        return { kind: 'propagating', detail: describeError(err) };
      }
      return { kind: 'failed', detail: describeError(err) };
    }
    if (!organization || organization.id.toLowerCase() !== id) {
      return { kind: 'mismatch', detail: `Graph answered for organization ${organization?.id ?? '(none)'}, not ${id}` };
    }
    const tenant = await this.#tenants.activate(
      {
        id,
        displayName: organization.displayName,
        domains: organization.verifiedDomains.map((d) => d.name),
        signedUpByOid: signup.signedUpByOid,
        signupContext: signup.signupContext,
      },
      this.#now(),
    );
    return { kind: 'active', tenant };
  }
}

function describeError(err: unknown): string {
  if (err instanceof IdentityError) return err.message;
  if (err instanceof GraphError) return `Graph ${err.statusCode} ${err.code ?? ''}`.trim();
  return (err as Error).message ?? String(err);
}
