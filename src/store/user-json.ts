import { sql, type RawBuilder } from 'kysely';

/**
 * The API's user object (`UserSchema` and `userOut` in src/api/schemas.ts),
 * written by SQLite's JSON functions: a list of 1,000 users then costs one
 * string built inside the engine instead of 1,000 row objects, their mapping
 * and their serialisation in JavaScript. The same rules as `toDirectoryUser`
 * and `userOut`; a test compares the two field by field.
 */

/** Epoch milliseconds as `Date#toISOString()` writes them (whole seconds, then the milliseconds, in integers); null stays null. */
function isoTime(column: string): RawBuilder<string | null> {
  const ms = sql.ref(column);
  return sql`strftime('%Y-%m-%dT%H:%M:%S', ${ms} / 1000, 'unixepoch') || printf('.%03dZ', ${ms} % 1000)`;
}

type Field = [name: string, value: RawBuilder<unknown>];
/** A field whose value is the column of the same name as it is stored. */
const stored = (column: string): Field => [column, sql`${sql.ref(column)}`];

/** Each field of the API's user, in `UserSchema`'s order, as an SQL expression on a `users` row. */
const USER_FIELDS: Field[] = [
  stored('id'),
  stored('tenant_id'),
  ['state', sql`case when deleted_at is not null then 'deleted' when account_enabled <> 1 then 'disabled' when user_type = 'Guest' then 'guest' else 'active' end`],
  ...['display_name', 'given_name', 'surname', 'mail', 'user_principal_name', 'job_title', 'department', 'office_location'].map(stored),
  ['account_enabled', sql`json(iif(account_enabled = 1, 'true', 'false'))`],
  ...['user_type', 'employee_id', 'company_name', 'mobile_phone'].map(stored),
  ['business_phones', sql`json(coalesce(nullif(business_phones, ''), '[]'))`],
  ['roster_role', sql`case when roster_role = 'admin' or mapped_role = 'admin' then 'admin' else 'member' end`],
  ['deleted_at', isoTime('deleted_at')],
  ['last_sign_in_at', isoTime('last_sign_in_at')],
  ['updated_at', isoTime('updated_at')],
];

/**
 * An aggregate over a subquery of `users` rows in id order: the JSON array of
 * their API objects in that order (`[]` for none), as UTF-8 bytes, so no
 * string is decoded and encoded again on its way to the socket. SQLite
 * aggregates a subquery's rows in the order the subquery yields them; an
 * ORDER BY inside the aggregate would sort the finished objects again and
 * double the cost of the page.
 */
export function apiUsersJsonArray(): RawBuilder<Uint8Array> {
  const pairs = sql.join(USER_FIELDS.map(([name, value]) => sql`${sql.lit(name)}, ${value}`));
  return sql`cast(json_group_array(json_object(${pairs})) as blob)`;
}
