/**
 * The base of every error Roster throws on purpose. Each layer declares its
 * own subclasses; one handler per surface (pages, API) turns them into a page
 * or a problem document from `status`, `code` and `expose` alone, so no code
 * outside the layer that throws an error needs to read its message.
 */
export class RosterError extends Error {
  /** HTTP status a surface answers with when this error ends a request. */
  readonly status: number;
  /** Stable, machine-readable identifier (snake_case); part of the API contract once exposed. */
  readonly code: string;
  /** Whether `message` is safe to show to the person or program that made the request. */
  readonly expose: boolean;

  constructor(message: string, options: { status?: number; code: string; expose?: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.status = options.status ?? 500;
    this.code = options.code;
    this.expose = options.expose ?? this.status < 500;
  }
}

/** The message of any thrown value, for logs and run records. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
