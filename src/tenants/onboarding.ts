import { GraphReader, GraphRequestError } from '../directory/graph-reader.ts';
import type { EntraApp } from '../identity/entra-app.ts';
import { AppNotInTenantError, ConsentMissingError, IdentityError } from '../identity/errors.ts';
import type { OutboundHttp } from '../identity/http.ts';
import type { Store } from '../store/database.ts';
import { repositoriesOf, transaction } from '../store/repositories.ts';
import type { TenantRecord, TenantRepository } from '../store/tenants.ts';
import { activationEvent, appendTenantEvent } from './lifecycle.ts';

export type ConfirmOutcome =
  | { kind: 'active'; tenant: TenantRecord }
  /** Consent is there, but an operator suspended the tenant; signing up again does not lift that. */
  | { kind: 'suspended'; tenant: TenantRecord }
  /** Consent was granted moments ago and has not reached the token endpoint or Graph yet. */
  | { kind: 'propagating'; detail: string }
  /** The directory Graph answered for is not the one the callback named. */
  | { kind: 'mismatch'; detail: string }
  | { kind: 'failed'; detail: string };

interface Organization {
  id: string;
  displayName: string;
  verifiedDomains: { name: string }[];
}

/** A sign-up waits for a person: a few quick attempts, then the page's own retry takes over. */
const ORGANIZATION_READ_ATTEMPTS = 2;

/**
 * Registers a customer organisation only once Roster has proved, with its own
 * app token for that tenant, that consent was granted there and that Graph
 * reports the same tenant id. The callback's `tenant` parameter alone proves
 * nothing: anyone can craft that redirect.
 */
export class TenantOnboarding {
  readonly #store: Store;
  readonly #tenants: TenantRepository;
  readonly #entra: EntraApp;
  readonly #graph: GraphReader;
  readonly #graphBaseUrl: URL;
  readonly #now: () => number;

  constructor(options: { store: Store; entra: EntraApp; http: OutboundHttp; graphBaseUrl: URL; now?: () => number }) {
    this.#store = options.store;
    this.#tenants = repositoriesOf(options.store).tenants;
    this.#entra = options.entra;
    this.#graph = new GraphReader({ http: options.http, maxAttempts: ORGANIZATION_READ_ATTEMPTS });
    this.#graphBaseUrl = options.graphBaseUrl;
    this.#now = options.now ?? Date.now;
  }

  async confirm(tenantId: string, signup: { signedUpByOid: string | null; signupContext: Record<string, unknown> | null }): Promise<ConfirmOutcome> {
    const id = tenantId.toLowerCase();
    try {
      await this.#entra.appToken(id, { forceRefresh: true });
    } catch (err) {
      const detail = describeError(err);
      // Just after consent, "not in the tenant" and "no consent" mean "not arrived yet".
      if (err instanceof AppNotInTenantError || err instanceof ConsentMissingError) {
        await this.#tenants.markPending(id, this.#now());
        return { kind: 'propagating', detail };
      }
      return { kind: 'failed', detail };
    }

    let organization: Organization | undefined;
    try {
      const url = new URL('/v1.0/organization?$select=id,displayName,verifiedDomains', this.#graphBaseUrl).href;
      const page = await this.#graph.getPage<Organization>(url, async ({ fresh }) => (await this.#entra.appToken(id, { forceRefresh: fresh })).accessToken);
      organization = page.value[0];
    } catch (err) {
      if (err instanceof GraphRequestError && (err.graphStatus === 401 || err.graphStatus === 403)) {
        await this.#tenants.markPending(id, this.#now());
        return { kind: 'propagating', detail: describeError(err) };
      }
      return { kind: 'failed', detail: describeError(err) };
    }
    if (!organization || organization.id.toLowerCase() !== id) {
      return { kind: 'mismatch', detail: `Graph answered for organization ${organization?.id ?? '(none)'}, not ${id}` };
    }
    const now = this.#now();
    // The activation and its event (signed up, or reconnected) commit together.
    const tenant = await transaction(this.#store, async (tx) => {
      const before = await tx.tenants.get(id);
      const activated = await tx.tenants.activate(
        {
          id,
          displayName: organization.displayName,
          domains: organization.verifiedDomains.map((d) => d.name),
          signedUpByOid: signup.signedUpByOid,
          signupContext: signup.signupContext,
        },
        now,
      );
      const event = activationEvent(before?.state, activated.state);
      if (event) await appendTenantEvent(tx, id, event, now);
      return activated;
    });
    return tenant.state === 'suspended' ? { kind: 'suspended', tenant } : { kind: 'active', tenant };
  }
}

function describeError(err: unknown): string {
  if (err instanceof IdentityError) return err.message;
  if (err instanceof GraphRequestError) return `Graph ${err.graphStatus} ${err.graphCode}`;
  return (err as Error).message ?? String(err);
}
