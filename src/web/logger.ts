import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Roster's structured logger. Request logs carry the path only: the query of
 * a sign-in or consent callback holds codes and `state`. Headers that carry
 * credentials are removed wherever they appear. Errors are logged as their
 * type, message, code and stack only: the enumerable fields of a driver's
 * error can hold its client object, connection parameters and password.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          'req.headers.cookie',
          'req.headers.authorization',
          'res.headers["set-cookie"]',
          '*.clientSecret',
          '*.client_secret',
          '*.accessToken',
          '*.access_token',
          '*.refreshToken',
          '*.refresh_token',
          '*.idToken',
          '*.id_token',
          '*.code',
          '*.password',
        ],
        remove: true,
      },
      serializers: {
        err: describeError,
        req: (req: { method: string; url: string; id?: string }) => ({ id: req.id, method: req.method, path: req.url.split('?')[0] }),
      },
    },
    destination,
  );
}

export interface LoggedError {
  type: string;
  message: string;
  code?: string | number;
  stack?: string;
}

function describeError(err: unknown): LoggedError {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err) };
  const { code } = err as { code?: unknown };
  return {
    type: err.constructor.name === 'Error' ? err.name : err.constructor.name,
    message: err.message,
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
    ...(err.stack ? { stack: err.stack } : {}),
  };
}

/**
 * One `info` line per request, written when it ends, with its method, path,
 * status and time; the "incoming request" line Fastify writes first is kept at
 * `debug`. Every field of a line goes through the redaction of secrets, so the
 * second line was a large share of what a page costs.
 */
export class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    if (!this.isLogDisabled(request)) request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
