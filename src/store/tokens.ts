import { createHash, randomBytes } from 'node:crypto';

/** 256 random bits, URL-safe: session ids, `state`, CSRF tokens. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** What the database keeps instead of a bearer secret. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
