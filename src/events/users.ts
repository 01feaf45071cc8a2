import type { EventDraft } from '../store/events.ts';
import type { StoredUser, UserWrite } from '../store/synced-users.ts';
import { rowChangeEvents } from './changes.ts';
import type { EventType } from './types.ts';

/** A user as events show it: Roster's synced columns, booleans and arrays as such, and whether Graph holds it soft-deleted. */
export interface UserEventData {
  id: string;
  display_name: string | null;
  given_name: string | null;
  surname: string | null;
  mail: string | null;
  user_principal_name: string | null;
  job_title: string | null;
  department: string | null;
  office_location: string | null;
  account_enabled: boolean;
  user_type: string | null;
  created_date_time: string | null;
  employee_id: string | null;
  company_name: string | null;
  mobile_phone: string | null;
  business_phones: string[];
  state: 'active' | 'soft_deleted';
  deleted_at: string | null;
}

type UserColumns = Partial<Omit<StoredUser, 'id' | 'seen_run_id'>> & { id: string };

export function userEventData(row: UserColumns): UserEventData {
  return {
    id: row.id,
    display_name: row.display_name ?? null,
    given_name: row.given_name ?? null,
    surname: row.surname ?? null,
    mail: row.mail ?? null,
    user_principal_name: row.user_principal_name ?? null,
    job_title: row.job_title ?? null,
    department: row.department ?? null,
    office_location: row.office_location ?? null,
    account_enabled: row.account_enabled !== 0,
    user_type: row.user_type ?? null,
    created_date_time: row.created_date_time ?? null,
    employee_id: row.employee_id ?? null,
    company_name: row.company_name ?? null,
    mobile_phone: row.mobile_phone ?? null,
    business_phones: row.business_phones ? (JSON.parse(row.business_phones) as string[]) : [],
    state: row.deleted_at == null ? 'active' : 'soft_deleted',
    deleted_at: row.deleted_at == null ? null : new Date(row.deleted_at).toISOString(),
  };
}

export interface UserChange {
  change: string;
  write: UserWrite | null;
}

/** The events of a page's applied user changes (sync rule 21). */
export function userChangeEvents(tenantId: string, changes: readonly (UserChange & { id: string })[], stored: ReadonlyMap<string, StoredUser>): EventDraft[] {
  return rowChangeEvents('user', tenantId, changes.map(({ id, change, write }) => ({ id, change, row: write })), stored, (row) => userEventData(row as UserColumns));
}

export function userEvents(type: Extract<EventType, `user.${string}`>, tenantId: string, rows: readonly UserColumns[]): EventDraft[] {
  return rows.map((row) => ({ type, tenantId, data: userEventData(row) }));
}
