/** A query string or form body as the protocol endpoints read it: one string per parameter. */
export type FormFields = Record<string, string | undefined>;

/** Flattens a parsed query or form body; a repeated parameter counts by its first value, as Entra reads it. */
export function formFields(input: unknown): FormFields {
  const fields: FormFields = {};
  if (input && typeof input === 'object') {
    for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
      if (typeof value === 'string') fields[key] = value;
      else if (Array.isArray(value) && typeof value[0] === 'string') fields[key] = value[0];
    }
  }
  return fields;
}
