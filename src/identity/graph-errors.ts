import { RosterError } from '../errors.ts';

/**
 * Microsoft Graph refused or failed a request. `graphStatus` and `graphCode`
 * are Graph's own; `status` and `code` are what a surface answers, so a Graph
 * 404 never becomes Roster's 404 unless a subclass says so.
 */
export class GraphError extends RosterError {
  readonly graphStatus: number;
  readonly graphCode: string;
  constructor(graphStatus: number, graphCode: string, message: string, options: { status?: number; code?: string; expose?: boolean } = {}) {
    super(message, { status: options.status ?? 502, code: options.code ?? 'graph_request_failed', expose: options.expose ?? false });
    this.graphStatus = graphStatus;
    this.graphCode = graphCode;
  }
}

/** Graph's error envelope (`{ "error": { "code", "message" } }`), or nothing when the body is not one (a proxy's page). */
export function graphErrorBody(text: string): { code?: string | undefined; message?: string | undefined } {
  try {
    const error = (JSON.parse(text) as { error?: { code?: string; message?: string } } | null)?.error;
    return error ? { code: error.code, message: error.message } : {};
  } catch {
    return {};
  }
}
