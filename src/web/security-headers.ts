import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';

/** Refuses every read: a header worked out once must not depend on a request. */
const NO_REQUEST = new Proxy({} as IncomingMessage, {
  get(_target, property) {
    throw new Error(`security headers are worked out once, so they cannot read the request (${String(property)})`);
  },
});

/**
 * Helmet's response headers for these options, worked out once at start-up.
 * Helmet (and the Fastify plugin around it) parse the options and build every
 * header again on each request; Roster's are the same for every response, so
 * they are computed here and copied onto each one.
 */
export function securityHeaders(options: HelmetOptions): ReadonlyArray<readonly [string, string]> {
  const headers: [string, string][] = [];
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      if (typeof value !== 'string') throw new Error(`helmet set ${name} to a value that is not text`);
      headers.push([name, value]);
    },
    // Node's own responses never carry X-Powered-By, the one header helmet removes.
    removeHeader() {},
  };
  let finished = false;
  helmet(options)(NO_REQUEST, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
    finished = true;
  });
  if (!finished) throw new Error('helmet did not set its headers at once');
  return headers;
}
