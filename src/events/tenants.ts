import type { EventDraft } from '../store/events.ts';
import type { TenantRecord } from '../store/tenants.ts';
import type { EventType } from './types.ts';

export interface TenantEventData {
  id: string;
  display_name: string;
  domains: string[];
  state: TenantRecord['state'];
  state_reason: string | null;
}

export function tenantEvent(type: Extract<EventType, `tenant.${string}`>, tenant: TenantRecord): EventDraft {
  return { type, tenantId: tenant.id, data: { id: tenant.id, display_name: tenant.displayName, domains: tenant.domains, state: tenant.state, state_reason: tenant.stateReason } satisfies TenantEventData };
}

/** The sync's health as events show it. */
export interface SyncHealthEventData {
  tenant_id: string;
  health: string;
  previous_health: string;
  error: string | null;
  run_id: string | null;
  /** Which part of the tenant's sync changed health: its users, or its groups and memberships. */
  objects: 'users' | 'groups';
}

/**
 * The event a change of a tenant's sync health is owed, if any: `sync.held`
 * on a hold, `sync.failed` on entering a failing health, `sync.recovered` on
 * returning to ok. The same health again (another failed run) is no change.
 */
export function syncHealthEvent(tenantId: string, change: { from: string; to: string; error: string | null; runId: string | null; objects?: 'users' | 'groups' }): EventDraft | null {
  if (change.from === change.to) return null;
  const type: EventType = change.to === 'held' ? 'sync.held' : change.to === 'ok' ? 'sync.recovered' : 'sync.failed';
  return { type, tenantId, data: { tenant_id: tenantId, health: change.to, previous_health: change.from, error: change.error, run_id: change.runId, objects: change.objects ?? 'users' } satisfies SyncHealthEventData };
}
