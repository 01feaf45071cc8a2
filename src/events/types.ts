import type { EventRow } from '../store/events.ts';

/** Every event type Roster emits (spec: events-and-api.md). Group types are written by the groups sink. */
export const EVENT_TYPES = [
  'tenant.signed_up',
  'tenant.disconnected',
  'tenant.reconnected',
  'tenant.suspended',
  'tenant.resumed',
  'tenant.offboarded',
  'user.created',
  'user.updated',
  'user.soft_deleted',
  'user.restored',
  'user.deleted',
  'group.created',
  'group.updated',
  'group.soft_deleted',
  'group.restored',
  'group.deleted',
  'group.user_added',
  'group.user_removed',
  'sync.held',
  'sync.failed',
  'sync.recovered',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

const KNOWN = new Set<string>(EVENT_TYPES);

export function isEventType(value: string): value is EventType {
  return KNOWN.has(value);
}

/** An event as the feed and webhooks show it (the Standard Webhooks payload). */
export interface EventEnvelope {
  id: string;
  type: string;
  created_at: string;
  tenant_id: string | null;
  /** The object after the change. */
  data: Record<string, unknown>;
  previous_attributes?: Record<string, unknown>;
}

export function toEnvelope(row: EventRow): EventEnvelope {
  return {
    id: row.id,
    type: row.type,
    created_at: new Date(row.created_at).toISOString(),
    tenant_id: row.tenant_id,
    data: JSON.parse(row.data) as Record<string, unknown>,
    ...(row.previous_attributes ? { previous_attributes: JSON.parse(row.previous_attributes) as Record<string, unknown> } : {}),
  };
}

/** The envelope as the exact bytes a webhook signs and sends. */
export function envelopeBody(row: EventRow): string {
  // Built from the stored JSON text rather than parsed and stringified again: cheaper, and the same bytes every attempt.
  const previous = row.previous_attributes ? `,"previous_attributes":${row.previous_attributes}` : '';
  return `{"id":${JSON.stringify(row.id)},"type":${JSON.stringify(row.type)},"created_at":"${new Date(row.created_at).toISOString()}","tenant_id":${JSON.stringify(row.tenant_id)},"data":${row.data}${previous}}`;
}
