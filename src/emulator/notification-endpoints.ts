// A subscriber's endpoints as Graph treats them: the URLs it accepts, the validation handshake and the notification posts.
import { randomUUID } from 'node:crypto';
import { GraphError } from './errors.ts';

/** The endpoint must answer the validation request within this time. */
export const VALIDATION_TIMEOUT_MS = 10_000;

/** https anywhere, or http to the local machine (Graph itself demands a public https URL). */
export function checkedUrl(raw: unknown, field: string): string {
  if (typeof raw !== 'string' || !URL.canParse(raw)) throw new GraphError(400, 'InvalidRequest', `'${field}' must be an absolute URL.`);
  const url = new URL(raw);
  const loopback = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw new GraphError(400, 'InvalidRequest', `'${field}' must be an https URL (the emulator also accepts http://localhost).`);
  return url.toString();
}

/**
 * The handshake Graph makes before trusting a URL: a POST with
 * `?validationToken=`, answered within 10 s by 200, text/plain and the token.
 */
export async function validateEndpoint(url: string, closing: AbortSignal): Promise<void> {
  const token = `Validation: Testing client application reachability for subscription Request-Id: ${randomUUID()}`;
  const target = new URL(url);
  target.searchParams.set('validationToken', token);
  let answer: { status: number; type: string; body: string } | null = null;
  try {
    const response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      redirect: 'manual',
      signal: AbortSignal.any([closing, AbortSignal.timeout(VALIDATION_TIMEOUT_MS)]),
    });
    answer = { status: response.status, type: response.headers.get('content-type') ?? '', body: await response.text() };
  } catch {
    answer = null;
  }
  if (!answer || answer.status !== 200 || !answer.type.toLowerCase().startsWith('text/plain') || answer.body !== token) {
    const why = !answer ? 'no answer within 10 seconds' : answer.status !== 200 ? `HTTP ${answer.status}` : !answer.type.toLowerCase().startsWith('text/plain') ? `Content-Type ${answer.type || 'missing'}` : 'the body was not the validation token';
    throw new GraphError(400, 'ValidationError', `Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request (${why}).`);
  }
}

export async function postJson(url: string, body: unknown, signal: AbortSignal): Promise<number> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(body), redirect: 'manual', signal });
  await response.arrayBuffer().catch(() => undefined);
  return response.status;
}
