const PLACEHOLDER_ORIGIN = 'http://roster.invalid';
/** Layers of percent-encoding undone before a value is given up on as too deeply encoded. */
const MAX_DECODING_ROUNDS = 5;

/**
 * Accepts a post-sign-in destination only when it is a path on this site.
 * Browsers treat `//host`, `/\host`, their encoded forms and paths that
 * normalise to them (`/.//host`, `/%2e%2e//host`, `/a/../..//host`) as other
 * origins, so every decoding and every normalisation of the value is checked
 * again, until the URL parser gives back exactly what it was given.
 */
export function safeReturnTo(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return null;
  let candidate = value;
  for (let round = 0; round < MAX_DECODING_ROUNDS; round++) {
    if (!staysLocalWhenDecoded(candidate)) return null;
    let parsed: URL;
    try {
      parsed = new URL(candidate, PLACEHOLDER_ORIGIN);
    } catch {
      return null;
    }
    if (parsed.origin !== PLACEHOLDER_ORIGIN) return null;
    const normalised = `${parsed.pathname}${parsed.search}`;
    if (normalised === candidate) return normalised;
    candidate = normalised;
  }
  return null;
}

/** Every percent-decoded layer of `value` is a rooted path that no browser reads as another host. */
function staysLocalWhenDecoded(value: string): boolean {
  let layer = value;
  for (let round = 0; round < MAX_DECODING_ROUNDS; round++) {
    if (!isLocalPath(layer)) return false;
    let next: string;
    try {
      next = decodeURIComponent(layer);
    } catch {
      return false;
    }
    if (next === layer) return true;
    layer = next;
  }
  return false;
}

function isLocalPath(value: string): boolean {
  // Browsers drop tabs and newlines inside URLs and read a backslash as a slash.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what must be refused
  return /^\/(?![/\\])/.test(value) && !/[\\\u0000-\u001f\u007f]/.test(value);
}
