import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { RosterError } from '../errors.ts';
import { IdentityUnavailableError } from '../identity/errors.ts';
import { databaseUnavailable } from '../store/database.ts';
import type { MessagePage, Pages } from './context.ts';

interface SchemaFailure {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/** What a page says for a status when the error's own message is not safe to show. */
const STATUS_PAGES: Record<number, Omit<MessagePage, 'links'>> = {
  400: { title: 'That request was not valid', message: 'Roster could not use the request.', next: 'Go back and try again.' },
  401: { title: 'Signed out', message: 'Your session has ended, so nothing was changed.', next: 'Sign in and try again.' },
  403: { title: 'Request refused', message: 'You may not do this.', next: 'Go back to Roster.' },
  404: { title: 'Page not found', message: 'There is no page at this address.' },
  409: { title: 'Not possible now', message: 'This cannot be done in the current state.', next: 'Reload the page and try again.' },
  413: { title: 'That request was too large', message: 'Roster does not accept a request this large.', next: 'Go back and send less.' },
  415: { title: 'That request was not understood', message: 'Roster could not read the request in the form it was sent.', next: 'Go back and try again.' },
  429: { title: 'Too many attempts', message: 'Too many requests came from your network in a short time.', next: 'Wait a minute, then try again.' },
  500: { title: 'Something went wrong', message: 'Roster hit an unexpected problem and did not finish your request.', next: 'Try again. If it keeps happening, contact support.' },
  502: { title: 'A service Roster relies on failed', message: 'Roster could not finish your request because a service it depends on gave an unusable answer.', next: 'Try again in a few minutes. If it keeps happening, contact support.' },
  503: { title: 'Temporarily unavailable', message: 'Roster cannot do this right now.', next: 'Try again in a few minutes. If it keeps happening, contact support.' },
};

/** Outages that pass: a 503 in words, with `Retry-After`, instead of a generic failure. */
const OUTAGE_PAGES: Record<string, Omit<MessagePage, 'links'>> = {
  database_unavailable: { title: 'Roster is briefly unavailable', message: 'Roster cannot reach its database at the moment, so it could not finish your request.', next: 'Try again in a minute.' },
  identity_unavailable: { title: 'Microsoft could not be reached', message: "Roster could not reach Microsoft's sign-in service, so it could not finish your request.", next: 'Try again in a minute.' },
};
const OUTAGE_RETRY_AFTER_SECONDS = '30';

function statusPage(status: number): Omit<MessagePage, 'links'> {
  return STATUS_PAGES[status] ?? (status >= 500 ? STATUS_PAGES[500]! : { title: 'Request refused', message: 'Roster could not do this.', next: 'Go back and try again.' });
}

/**
 * The one error handler of the pages. A `RosterError` becomes the message page
 * of its status (its message shown only when `expose`); Fastify's own errors
 * (schema validation, body too large, rate limits, ...) the page of theirs;
 * anything else a 500 page that shows nothing of the error, logged once.
 */
export function pageErrorHandler(pages: Pick<Pages, 'message'>) {
  return (err: FastifyError | RosterError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const links = [{ href: request.viewer ? '/app' : '/', label: 'Back to Roster', primary: true }];
    const outage = databaseUnavailable(err) ?? (err instanceof IdentityUnavailableError ? err : null);
    if (outage) {
      request.log.warn({ err: outage }, 'request failed: a service Roster needs is unavailable');
      reply.header('retry-after', OUTAGE_RETRY_AFTER_SECONDS);
      return pages.message(request, reply, 503, { ...OUTAGE_PAGES[outage.code]!, links });
    }
    if (err instanceof RosterError) {
      if (err.status >= 500) request.log.error({ err, code: err.code }, 'request failed');
      else request.log.info({ code: err.code, status: err.status }, 'request refused');
      const page = statusPage(err.status);
      return pages.message(request, reply, err.status, { ...page, ...(err.expose ? { message: err.message } : {}), links });
    }
    const fastifyError = err as Partial<FastifyError> & { validation?: SchemaFailure[]; validationContext?: string };
    if (fastifyError.validation) {
      return pages.message(request, reply, 400, { ...statusPage(400), message: `Roster could not use the request: ${describeSchemaFailure(fastifyError.validation, fastifyError.validationContext)}.`, links });
    }
    const status = fastifyError.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      const page = statusPage(status);
      const message = status === 429 ? page.message : status === 400 ? `Roster could not use the request: ${err.message}.` : err.message;
      return pages.message(request, reply, status, { ...page, message, links });
    }
    request.log.error({ err }, 'request failed');
    return pages.message(request, reply, 500, { ...statusPage(500), links });
  };
}

/** What a pattern-checked field accepts, in words (Ajv's own message shows the regular expression). */
const FIELD_FORMATS: Record<string, string> = {
  id: 'must be an id in GUID form (like 3f2504e0-4f89-41d3-9a0c-0305e82c3301)',
  page: 'must be a page number: 1, 2, 3 and so on',
  after: 'is not a place in the list: follow the links on the page rather than edit them',
  before: 'is not a place in the list: follow the links on the page rather than edit them',
  tenant: 'must be a tenant id in GUID form',
};

/** Which field failed the schema and what it accepts, in words a person can act on. */
export function describeSchemaFailure(failures: SchemaFailure[], context: string | undefined): string {
  const first = failures[0];
  if (!first) return `the ${context ?? 'request'} is not valid`;
  const field = first.instancePath.replace(/^\//, '').replace(/\//g, '.') || String(first.params.missingProperty ?? first.params.additionalProperty ?? context ?? 'request');
  switch (first.keyword) {
    case 'enum':
      return `"${field}" must be equal to one of the allowed values: ${(first.params.allowedValues as unknown[]).join(', ')}`;
    case 'pattern':
      return `"${field}" ${FIELD_FORMATS[field] ?? 'is not in the expected format'}`;
    case 'required':
      return `"${field}" is missing`;
    case 'maxLength':
      return `"${field}" is longer than ${String(first.params.limit)} characters`;
    case 'type':
      return `"${field}" must be a single ${String(first.params.type)} value`;
    default:
      return `"${field}" ${first.message ?? 'is not valid'}`;
  }
}
