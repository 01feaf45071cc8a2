const PLACEHOLDER_ORIGIN = 'http://roster.invalid';

/**
 * Accepts a post-sign-in destination only when it is a path on this site.
 * Browsers treat `//host`, `/\host` and their encoded forms as other origins,
 * so anything that does not stay on a placeholder origin after decoding and
 * URL parsing is refused.
 */
export function safeReturnTo(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return null;
  let decoded = value;
  for (let i = 0; i < 3; i++) {
    // eslint-disable-next-line no-control-regex -- control characters are exactly what must be refused
    if (!/^\/(?![/\\])/.test(decoded) || /[\\\u0000-\u001f\u007f]/.test(decoded)) return null;
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return null;
    }
    if (next === decoded) break;
    decoded = next;
  }
  let parsed: URL;
  try {
    parsed = new URL(value, PLACEHOLDER_ORIGIN);
  } catch {
    return null;
  }
  if (parsed.origin !== PLACEHOLDER_ORIGIN) return null;
  return `${parsed.pathname}${parsed.search}`;
}
