import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { RosterError } from '../errors.ts';
import { IdentityUnavailableError } from '../identity/errors.ts';
import { databaseUnavailable } from '../store/database.ts';
import { InvalidInputError } from '../tenants/errors.ts';

/** An RFC 9457 problem document, with Roster's stable `code` and, for a 400, the `field` at fault. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  field?: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Request too large',
  415: 'Unsupported media type',
  429: 'Too many requests',
  500: 'Internal server error',
  503: 'Service unavailable',
};

const OUTAGE_RETRY_AFTER_SECONDS = '30';

/** The problem's `type`: a URI per stable code, documented in the README. */
export function problemType(code: string): string {
  return `urn:roster:problem:${code}`;
}

export function sendProblem(reply: FastifyReply, status: number, code: string, detail: string, field?: string): FastifyReply {
  const problem: Problem = { type: problemType(code), title: TITLES[status] ?? (status >= 500 ? TITLES[500]! : 'Request refused'), status, detail, code, ...(field ? { field } : {}) };
  if (status === 401) reply.header('www-authenticate', 'Bearer realm="roster"');
  return reply.code(status).type('application/problem+json').send(problem);
}

interface SchemaFailure {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/** The field a schema failure is about (`limit`, `after`, `body.name`), for a 400 a program can act on. */
function failedField(failure: SchemaFailure | undefined, context: string | undefined): string {
  if (!failure) return context ?? 'request';
  const path = failure.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const extra = failure.params.additionalProperties;
  const named = String(failure.params.missingProperty ?? failure.params.additionalProperty ?? (Array.isArray(extra) ? extra[0] : '') ?? '');
  return [path, named].filter(Boolean).join('.') || context || 'request';
}

function describeFailure(field: string, failure: SchemaFailure | undefined): string {
  if (!failure) return `"${field}" is not valid.`;
  switch (failure.keyword) {
    case 'required':
      return `"${field}" is missing.`;
    case 'additionalProperties':
    case 'boolean':
      return `"${field}" is not a known field.`;
    case 'enum':
      return `"${field}" must be one of: ${(failure.params.allowedValues as unknown[]).join(', ')}.`;
    case 'pattern':
      return `"${field}" is not in the expected format.`;
    default:
      return `"${field}" ${failure.message ?? 'is not valid'}.`;
  }
}

/**
 * The one error handler of the API surface: everything becomes a problem+json
 * document. A `RosterError` keeps its status and code (its message only when
 * `expose`); schema failures are 400s naming the field; outages of the database
 * or of Microsoft are 503 with `Retry-After`; anything else is a 500 that shows
 * nothing and is logged once.
 */
export function problemErrorHandler(err: FastifyError | RosterError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const outage = databaseUnavailable(err) ?? (err instanceof IdentityUnavailableError ? err : null);
  if (outage) {
    request.log.warn({ err: outage }, 'API request failed: a service Roster needs is unavailable');
    reply.header('retry-after', OUTAGE_RETRY_AFTER_SECONDS);
    return sendProblem(reply, 503, outage.code, 'Roster cannot reach a service it needs right now. Try again shortly.');
  }
  if (err instanceof RosterError) {
    if (err.status >= 500) request.log.error({ err, code: err.code }, 'API request failed');
    const field = err instanceof InvalidInputError ? err.field : undefined;
    return sendProblem(reply, err.status, err.code, err.expose ? err.message : (TITLES[err.status] ?? 'The request failed.'), field);
  }
  const fastifyError = err as Partial<FastifyError> & { validation?: SchemaFailure[]; validationContext?: string };
  if (fastifyError.validation) {
    const failure = fastifyError.validation[0];
    const field = failedField(failure, fastifyError.validationContext);
    return sendProblem(reply, 400, 'invalid_request', describeFailure(field, failure), field);
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) return sendProblem(reply, status, fastifyError.code?.toLowerCase() ?? 'bad_request', err.message);
  request.log.error({ err }, 'API request failed');
  return sendProblem(reply, 500, 'internal_error', 'Roster hit an unexpected problem and did not finish the request.');
}
