import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';

/**
 * An error of the Microsoft identity platform. `aadsts` is the numeric code
 * Entra puts into `error_codes` and at the start of `error_description`.
 */
export class IdentityError extends Error {
  readonly error: string;
  readonly aadsts: number;
  readonly status: number;
  readonly suberror: string | undefined;

  constructor(error: string, aadsts: number, description: string, options: { status?: number; suberror?: string } = {}) {
    super(description);
    this.error = error;
    this.aadsts = aadsts;
    this.status = options.status ?? (error === 'invalid_client' ? 401 : 400);
    this.suberror = options.suberror;
  }

  get description(): string {
    return `AADSTS${this.aadsts}: ${this.message}`;
  }
}

/** Body of a token-endpoint (or discovery) error, in Entra's shape. */
export function identityErrorBody(err: IdentityError, now: Date): Record<string, unknown> {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = now.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const body: Record<string, unknown> = {
    error: err.error,
    error_description: `${err.description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [err.aadsts],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${err.aadsts}`,
  };
  if (err.suberror) body.suberror = err.suberror;
  return body;
}

export function sendIdentityError(reply: FastifyReply, err: IdentityError, now: Date): FastifyReply {
  return reply.code(err.status).header('cache-control', 'no-store').send(identityErrorBody(err, now));
}

/** Graph's error envelope: `{"error":{"code","message","innerError":{...}}}`. */
export function graphErrorBody(code: string, message: string, now: Date, clientRequestId?: string): Record<string, unknown> {
  const requestId = randomUUID();
  return {
    error: {
      code,
      message,
      innerError: {
        date: now.toISOString().replace(/\.\d+Z$/, ''),
        'request-id': requestId,
        'client-request-id': clientRequestId ?? requestId,
      },
    },
  };
}

export function sendGraphError(
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  now: Date,
  headers: Record<string, string> = {},
): FastifyReply {
  const clientRequestId = reply.request.headers['client-request-id'];
  reply.code(status).headers(headers);
  return reply.send(graphErrorBody(code, message, now, typeof clientRequestId === 'string' ? clientRequestId : undefined));
}
