import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LIFECYCLE_PATH, NOTIFICATION_PATH } from '../../directory/subscriptions.ts';
import { checkNotification, type NotificationReceiver } from '../graph-notifications.ts';

/** Graph batches notifications; a body larger than this is not one. */
const BODY_LIMIT = 1024 * 1024;
/** Graph's validation tokens are a short sentence; anything far longer is not one of them. */
const TOKEN_MAX = 1024;
/** Graph batches its notifications; a sender far above this per address is flooding, not notifying. */
const PER_ADDRESS = { rateLimit: { max: 1200, timeWindow: '1 minute' } };

/**
 * The endpoints Microsoft Graph calls (rules 2-4, security rule 34): no
 * session and no CSRF token (Graph has neither); the validation handshake
 * echoes its token as text/plain and nothing else is ever echoed; a
 * notification is checked item by item, and the only effect of an accepted
 * one is a recorded wish to sync and a debounced delta round, answered with
 * 202 before any sync starts.
 */
export async function graphNotificationRoutes(app: FastifyInstance, receiver: NotificationReceiver): Promise<void> {
  // Bodies are parsed here, so a parser's error message can never reflect what was sent.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_request, body, done) => done(null, body));

  // When each subscription's wish to sync was last written: a burst writes it once a second, not once per item.
  const recorded = new Map<string, number>();
  app.post(NOTIFICATION_PATH, { logLevel: 'warn', config: PER_ADDRESS }, async (request, reply) => {
    if (hasValidationToken(request)) return answerValidation(request, reply);
    // A batch repeats the same subscription: each distinct (subscription, tenant, clientState) is checked once.
    const checks = new Map<string, ReturnType<typeof checkNotification>>();
    for (const raw of itemsOf(request.body)) {
      receiver.counters.received += 1;
      const key = checkKey(raw);
      let check = key === null ? undefined : checks.get(key);
      if (!check) {
        check = checkNotification(receiver, raw);
        if (key !== null) checks.set(key, check);
      }
      const checked = await check;
      if (!checked.ok) {
        receiver.counters.drop(checked.reason);
        continue;
      }
      receiver.counters.accepted += 1;
      const subscriptionId = checked.owner.subscriptionId!;
      const now = receiver.now();
      if (now - (recorded.get(subscriptionId) ?? 0) >= 1000) {
        recorded.set(subscriptionId, now);
        await receiver.subscriptions.recordNotification(subscriptionId, checked.owner.tenantId, now);
      }
      receiver.syncSoon(checked.owner.tenantId);
    }
    if (recorded.size > 10_000) recorded.clear();
    return accepted(reply);
  });

  app.post(LIFECYCLE_PATH, { logLevel: 'warn', config: PER_ADDRESS }, async (request, reply) => {
    if (hasValidationToken(request)) return answerValidation(request, reply);
    for (const raw of itemsOf(request.body)) {
      receiver.counters.received += 1;
      const checked = await checkNotification(receiver, raw);
      if (!checked.ok) {
        receiver.counters.drop(checked.reason);
        continue;
      }
      const event = checked.item.lifecycleEvent;
      const subscriptionId = checked.owner.subscriptionId!;
      if (event === 'reauthorizationRequired' || event === 'subscriptionRemoved') {
        receiver.counters.lifecycle += 1;
        if (await receiver.subscriptions.markReauthorizing(subscriptionId, receiver.now())) receiver.reauthorize(subscriptionId);
      } else if (event === 'missed') {
        receiver.counters.lifecycle += 1;
        receiver.syncSoon(checked.owner.tenantId);
      } else {
        receiver.counters.drop('unknown_event');
      }
    }
    return accepted(reply);
  });
}

function checkKey(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const { subscriptionId, tenantId, clientState, subscriptionExpirationDateTime } = raw as Record<string, unknown>;
  return JSON.stringify([subscriptionId, tenantId, clientState, subscriptionExpirationDateTime]);
}

function hasValidationToken(request: FastifyRequest): boolean {
  return Object.hasOwn((request.query ?? {}) as object, 'validationToken');
}

/** The handshake (rule 4): the URL-decoded token, as text/plain, with nothing around it. */
function answerValidation(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const token = (request.query as Record<string, unknown>).validationToken;
  reply.header('content-security-policy', "default-src 'none'; sandbox").header('x-content-type-options', 'nosniff').header('cache-control', 'no-store');
  if (typeof token !== 'string' || token.length === 0 || token.length > TOKEN_MAX) {
    return reply.code(400).type('text/plain; charset=utf-8').send('Bad validation request.');
  }
  return reply.code(200).type('text/plain; charset=utf-8').send(token);
}

/** The `value` array of a notification body; anything else holds one malformed item. */
function itemsOf(body: unknown): unknown[] {
  if (typeof body !== 'string') return [undefined];
  try {
    const parsed = JSON.parse(body) as { value?: unknown };
    return Array.isArray(parsed?.value) ? parsed.value : [undefined];
  } catch {
    return [undefined];
  }
}

function accepted(reply: FastifyReply): FastifyReply {
  return reply.code(202).header('cache-control', 'no-store').send();
}
