import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';

/**
 * The base of every error the emulator answers on purpose: an HTTP status, a
 * stable code, and whether its message is safe to show (`expose`). Each
 * surface (token endpoint, sign-in pages, Graph, control API) has a subclass
 * that answers in that surface's own shape; one error handler calls `respond`.
 */
export class EmulatorError extends Error {
  readonly status: number;
  readonly code: string;
  readonly expose: boolean;

  constructor(status: number, code: string, message: string, options: { expose?: boolean } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.expose = options.expose ?? status < 500;
  }

  /** The message a client may see: hidden for errors that are not safe to show. */
  get publicMessage(): string {
    return this.expose ? this.message : 'Internal error in the emulator.';
  }

  /** Answers the request; the control API's shape unless a subclass knows better. */
  respond(reply: FastifyReply, _now: Date): FastifyReply {
    return reply.code(this.status).send({ error: { code: this.code, message: this.publicMessage } });
  }
}

/** Bad input to the control API: 400 with a message that says which field. */
export class ControlInputError extends EmulatorError {
  constructor(message: string) {
    super(400, 'BadRequest', message);
  }
}

/**
 * An error of the Microsoft identity platform. `aadsts` is the numeric code
 * Entra puts into `error_codes` and at the start of `error_description`; the
 * OAuth `error` (e.g. `invalid_grant`) is the stable code.
 */
export class IdentityError extends EmulatorError {
  readonly aadsts: number;
  readonly suberror: string | undefined;

  constructor(error: string, aadsts: number, description: string, options: { status?: number; suberror?: string } = {}) {
    super(options.status ?? (error === 'invalid_client' ? 401 : 400), error, description, { expose: true });
    this.aadsts = aadsts;
    this.suberror = options.suberror;
  }

  /** The OAuth error code (`invalid_grant`, ...). */
  get error(): string {
    return this.code;
  }

  get description(): string {
    return `AADSTS${this.aadsts}: ${this.message}`;
  }

  override respond(reply: FastifyReply, now: Date): FastifyReply {
    return reply.code(this.status).header('cache-control', 'no-store').send(identityErrorBody(this, now));
  }
}

/** An error Graph answers in its envelope, with the headers it sends alongside (`WWW-Authenticate`, `Location`). */
export class GraphError extends EmulatorError {
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(status, code, message, { expose: true });
    this.headers = headers;
  }

  override respond(reply: FastifyReply, now: Date): FastifyReply {
    return sendGraphError(reply, this.status, this.code, this.message, now, this.headers);
  }
}

/** `Trace ID`, `Correlation ID` and `Timestamp` as Entra appends them to every error description. */
export function entraErrorTrailer(now: Date): { traceId: string; correlationId: string; timestamp: string; text: string } {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = now.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  return { traceId, correlationId, timestamp, text: `\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}` };
}

/** Body of a token-endpoint (or discovery) error, in Entra's shape. */
export function identityErrorBody(err: IdentityError, now: Date): Record<string, unknown> {
  const trailer = entraErrorTrailer(now);
  const body: Record<string, unknown> = {
    error: err.error,
    error_description: `${err.description}${trailer.text}`,
    error_codes: [err.aadsts],
    timestamp: trailer.timestamp,
    trace_id: trailer.traceId,
    correlation_id: trailer.correlationId,
    error_uri: entraErrorUri(err.aadsts),
  };
  if (err.suberror) body.suberror = err.suberror;
  return body;
}

export function entraErrorUri(aadsts: number): string {
  return `https://login.microsoftonline.com/error?code=${aadsts}`;
}

export function sendIdentityError(reply: FastifyReply, err: IdentityError, now: Date): FastifyReply {
  return err.respond(reply, now);
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
