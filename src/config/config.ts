import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { RosterError } from '../errors.ts';
import { WEBHOOK_ADDRESS_POLICIES, type WebhookAddressPolicy } from '../events/address-policy.ts';

/**
 * Roster's configuration, read once at start-up from the environment (and an
 * optional `.env` file, whose values never override the real environment).
 * Every variable is documented in the README; defaults are listed here.
 */
export interface RosterConfig {
  /** Address the web server listens on. */
  host: string;
  port: number;
  /** Externally visible base URL; redirect URIs are built from it, never from request headers. */
  publicUrl: URL;
  dataDir: string;
  database: { engine: 'sqlite'; path: string } | { engine: 'postgres'; url: string };
  /** Demo mode: no Entra settings given, so Roster runs against its own emulator. */
  demo: boolean;
  entra: {
    clientId: string;
    clientSecret: string | null;
    /** PEM file holding the certificate and its private key. */
    clientCertificatePath: string | null;
    authorityHost: URL;
    graphBaseUrl: URL;
  } | null;
  session: { idleMinutes: number; absoluteHours: number };
  sync: { intervalMinutes: number; tickSeconds: number; concurrency: number };
  /** Ports of the emulator that demo mode starts. */
  emulator: { httpsPort: number; httpPort: number };
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** People who see every tenant, as `(tid, oid)` pairs: the only identity Roster trusts. */
  operators: OperatorIdentity[];
  /** When set, `/metrics` asks for `Authorization: Bearer <token>`. */
  metricsToken: string | null;
  /** On SIGTERM or SIGINT, how long the work in hand may take to stop before the process exits anyway (with 1). */
  shutdownSeconds: number;
  /** Proxies whose X-Forwarded-For gives the client address (rate limits): none, a hop count, or addresses and CIDRs. */
  trustProxy: false | number | readonly string[];
  /** The outbox: whether changes append events, and how long the feed keeps them. */
  events: { enabled: boolean; retentionDays: number };
  /** Webhook delivery: how long a rotated-out secret keeps signing, and requests in flight per endpoint. */
  webhooks: { rotationWindowHours: number; concurrencyPerEndpoint: number; addressPolicy: WebhookAddressPolicy };
  /** Requests each API key may make per minute on `/api/v1`. */
  apiRateLimitPerMinute: number;
  /**
   * Graph change notifications: off, or on with the public base URL Graph
   * posts to (`<url>/graph/notifications`, `<url>/graph/lifecycle`) and the
   * longer interval of scheduled rounds while a tenant's subscription is healthy.
   */
  notifications: { enabled: false } | { enabled: true; url: URL; healthyIntervalMinutes: number };
}

export interface OperatorIdentity {
  tenantId: string;
  objectId: string;
}

export class ConfigError extends RosterError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Roster's configuration has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, { code: 'config_invalid' });
    this.problems = problems;
  }
}

const GUID_TEXT = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const GUID = new RegExp(`^${GUID_TEXT}$`, 'i');
const OPERATOR_PAIR = new RegExp(`^${GUID_TEXT}:${GUID_TEXT}$`, 'i');

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const integer = (name: string, min: number, max: number) =>
  optionalText.pipe(
    z
      .string()
      .regex(/^\d+$/, `${name} must be a whole number`)
      .transform(Number)
      .refine((n) => n >= min && n <= max, `${name} must be between ${min} and ${max}`)
      .optional(),
  );

const httpUrl = (name: string, schemes: string[]) =>
  optionalText.pipe(
    z
      .string()
      .refine((v) => URL.canParse(v), `${name} must be an absolute URL such as ${schemes[0]}://example.com`)
      .transform((v) => new URL(v))
      .refine((u) => schemes.includes(u.protocol.slice(0, -1)), `${name} must use ${schemes.join(' or ')}`)
      .optional(),
  );

const envSchema = z.object({
  HOST: optionalText,
  PORT: integer('PORT', 0, 65535),
  PUBLIC_URL: httpUrl('PUBLIC_URL', ['http', 'https']),
  DATA_DIR: optionalText,
  DATABASE_URL: optionalText.pipe(
    z
      .string()
      .refine((v) => /^postgres(ql)?:\/\//.test(v) && URL.canParse(v), 'DATABASE_URL must be a PostgreSQL URL such as postgres://user:password@host:5432/roster')
      .optional(),
  ),
  ENTRA_CLIENT_ID: optionalText.pipe(z.string().regex(GUID, 'ENTRA_CLIENT_ID must be the application (client) id, a GUID').optional()),
  ENTRA_CLIENT_SECRET: optionalText,
  ENTRA_CLIENT_CERTIFICATE: optionalText,
  ENTRA_AUTHORITY_HOST: httpUrl('ENTRA_AUTHORITY_HOST', ['https']),
  GRAPH_BASE_URL: httpUrl('GRAPH_BASE_URL', ['https']),
  SESSION_IDLE_MINUTES: integer('SESSION_IDLE_MINUTES', 1, 7 * 24 * 60),
  SESSION_ABSOLUTE_HOURS: integer('SESSION_ABSOLUTE_HOURS', 1, 30 * 24),
  SYNC_INTERVAL_MINUTES: integer('SYNC_INTERVAL_MINUTES', 1, 24 * 60),
  SYNC_TICK_SECONDS: integer('SYNC_TICK_SECONDS', 1, 3600),
  SYNC_CONCURRENCY: integer('SYNC_CONCURRENCY', 1, 64),
  EMULATOR_HTTPS_PORT: integer('EMULATOR_HTTPS_PORT', 0, 65535),
  EMULATOR_HTTP_PORT: integer('EMULATOR_HTTP_PORT', 0, 65535),
  OPERATORS: optionalText.pipe(
    z
      .string()
      .refine(
        (v) => v.split(',').every((pair) => OPERATOR_PAIR.test(pair.trim())),
        'OPERATORS must be a comma-separated list of tenantId:objectId pairs (two GUIDs each), e.g. 72f988bf-...:4a6c...',
      )
      .transform((v) => v.split(',').map((pair) => {
        const [tenantId, objectId] = pair.trim().toLowerCase().split(':') as [string, string];
        return { tenantId, objectId };
      }))
      .optional(),
  ),
  METRICS_TOKEN: optionalText.pipe(z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional()),
  SHUTDOWN_TIMEOUT_SECONDS: integer('SHUTDOWN_TIMEOUT_SECONDS', 1, 600),
  TRUST_PROXY: optionalText.pipe(
    z
      .string()
      .refine(
        (v) => /^\d{1,2}$/.test(v) || v.split(',').every((entry) => isAddressOrCidr(entry.trim())),
        'TRUST_PROXY must be the number of proxies in front of Roster (e.g. 1) or their comma-separated addresses or CIDRs (e.g. 10.0.0.0/8); never trust every sender',
      )
      .transform((v) => (/^\d{1,2}$/.test(v) ? (Number(v) === 0 ? (false as const) : Number(v)) : v.split(',').map((entry) => entry.trim())))
      .optional(),
  ),
  EVENTS_ENABLED: optionalText.pipe(z.enum(['true', 'false'], { message: 'EVENTS_ENABLED must be true or false' }).optional()),
  EVENT_RETENTION_DAYS: integer('EVENT_RETENTION_DAYS', 2, 3650),
  WEBHOOK_SECRET_ROTATION_HOURS: integer('WEBHOOK_SECRET_ROTATION_HOURS', 0, 30 * 24),
  WEBHOOK_CONCURRENCY_PER_ENDPOINT: integer('WEBHOOK_CONCURRENCY_PER_ENDPOINT', 1, 64),
  WEBHOOK_ADDRESSES: optionalText.pipe(z.enum(WEBHOOK_ADDRESS_POLICIES, { message: `WEBHOOK_ADDRESSES must be one of ${WEBHOOK_ADDRESS_POLICIES.join(', ')}` }).optional()),
  API_RATE_LIMIT_PER_MINUTE: integer('API_RATE_LIMIT_PER_MINUTE', 1, 1_000_000),
  LOG_LEVEL: optionalText.pipe(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional()),
  NOTIFICATIONS: optionalText.pipe(z.enum(['on', 'off'], { message: 'NOTIFICATIONS must be on or off' }).optional()),
  NOTIFICATION_URL: httpUrl('NOTIFICATION_URL', ['https', 'http']),
  NOTIFICATION_SYNC_INTERVAL_MINUTES: integer('NOTIFICATION_SYNC_INTERVAL_MINUTES', 1, 24 * 60),
});

/** Hosts that only this machine reaches: the one place an http notification URL makes sense (the demo and its emulator). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** An IPv4 or IPv6 address, optionally with a prefix length (`10.0.0.0/8`, `fd00::/8`). */
function isAddressOrCidr(entry: string): boolean {
  const [address = '', prefix, extra] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128));
}

/** Reads `.env` from `cwd` when present; real environment variables win. */
export function environmentWithDotEnv(env: NodeJS.ProcessEnv, cwd: string): Record<string, string | undefined> {
  const file = resolve(cwd, '.env');
  if (!existsSync(file)) return { ...env };
  return { ...parseEnv(readFileSync(file, 'utf8')), ...env };
}

export function loadConfig(env: Record<string, string | undefined>, cwd = process.cwd()): RosterConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`));
  }
  const v = parsed.data;
  const problems: string[] = [];

  const port = v.PORT ?? 3000;
  const publicUrl = v.PUBLIC_URL ?? new URL(`http://localhost:${port}`);
  if (publicUrl.pathname !== '/' || publicUrl.search || publicUrl.hash) {
    problems.push('PUBLIC_URL must be a bare origin such as https://roster.example.com (no path, query or fragment)');
  }
  const dataDir = resolve(cwd, v.DATA_DIR ?? 'data');

  const anyEntra = v.ENTRA_CLIENT_ID ?? v.ENTRA_CLIENT_SECRET ?? v.ENTRA_CLIENT_CERTIFICATE;
  let entra: RosterConfig['entra'] = null;
  if (anyEntra !== undefined) {
    if (!v.ENTRA_CLIENT_ID) problems.push('ENTRA_CLIENT_ID is missing: set it to the application (client) id of your Entra app registration');
    if (!v.ENTRA_CLIENT_SECRET && !v.ENTRA_CLIENT_CERTIFICATE) {
      problems.push('ENTRA_CLIENT_SECRET or ENTRA_CLIENT_CERTIFICATE is needed: give a client secret, or the path of a PEM file with the certificate and its private key (recommended)');
    }
    const certPath = v.ENTRA_CLIENT_CERTIFICATE ? resolve(cwd, v.ENTRA_CLIENT_CERTIFICATE) : null;
    if (certPath && !existsSync(certPath)) problems.push(`ENTRA_CLIENT_CERTIFICATE: no file at ${certPath}`);
    if (publicUrl.protocol === 'http:' && publicUrl.hostname !== 'localhost') {
      problems.push('PUBLIC_URL must use https (Entra accepts http redirect URIs only for localhost)');
    }
    entra = {
      clientId: v.ENTRA_CLIENT_ID ?? '',
      clientSecret: v.ENTRA_CLIENT_SECRET ?? null,
      clientCertificatePath: certPath,
      authorityHost: v.ENTRA_AUTHORITY_HOST ?? new URL('https://login.microsoftonline.com'),
      graphBaseUrl: v.GRAPH_BASE_URL ?? new URL('https://graph.microsoft.com'),
    };
  } else if (v.ENTRA_AUTHORITY_HOST || v.GRAPH_BASE_URL) {
    problems.push('ENTRA_AUTHORITY_HOST and GRAPH_BASE_URL need ENTRA_CLIENT_ID and a secret or certificate; leave all of them unset for demo mode');
  }
  const notifications = notificationSettings(v, publicUrl, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    host: v.HOST ?? '127.0.0.1',
    port,
    publicUrl,
    dataDir,
    database: v.DATABASE_URL ? { engine: 'postgres', url: v.DATABASE_URL } : { engine: 'sqlite', path: resolve(dataDir, 'roster.db') },
    demo: entra === null,
    entra,
    session: { idleMinutes: v.SESSION_IDLE_MINUTES ?? 60, absoluteHours: v.SESSION_ABSOLUTE_HOURS ?? 12 },
    sync: { intervalMinutes: v.SYNC_INTERVAL_MINUTES ?? 15, tickSeconds: v.SYNC_TICK_SECONDS ?? 30, concurrency: v.SYNC_CONCURRENCY ?? 2 },
    emulator: { httpsPort: v.EMULATOR_HTTPS_PORT ?? 5443, httpPort: v.EMULATOR_HTTP_PORT ?? 5080 },
    logLevel: v.LOG_LEVEL ?? 'info',
    operators: v.OPERATORS ?? [],
    metricsToken: v.METRICS_TOKEN ?? null,
    shutdownSeconds: v.SHUTDOWN_TIMEOUT_SECONDS ?? 30,
    trustProxy: v.TRUST_PROXY ?? false,
    events: { enabled: v.EVENTS_ENABLED !== 'false', retentionDays: v.EVENT_RETENTION_DAYS ?? 30 },
    webhooks: { rotationWindowHours: v.WEBHOOK_SECRET_ROTATION_HOURS ?? 24, concurrencyPerEndpoint: v.WEBHOOK_CONCURRENCY_PER_ENDPOINT ?? 8, addressPolicy: v.WEBHOOK_ADDRESSES ?? 'public-and-loopback' },
    apiRateLimitPerMinute: v.API_RATE_LIMIT_PER_MINUTE ?? 600,
    notifications,
  };
}

/**
 * NOTIFICATIONS=on needs a base URL Graph can reach: NOTIFICATION_URL, or
 * PUBLIC_URL when that is already it. Graph calls it from the internet, so it
 * must be https; http passes only for loopback hosts (the demo's emulator).
 */
function notificationSettings(v: z.infer<typeof envSchema>, publicUrl: URL, problems: string[]): RosterConfig['notifications'] {
  if (v.NOTIFICATIONS !== 'on') {
    if (v.NOTIFICATION_URL) problems.push('NOTIFICATION_URL is set but NOTIFICATIONS is not on: set NOTIFICATIONS=on to use it, or remove it');
    return { enabled: false };
  }
  const url = v.NOTIFICATION_URL ?? publicUrl;
  const name = v.NOTIFICATION_URL ? 'NOTIFICATION_URL' : 'PUBLIC_URL (used as NOTIFICATION_URL)';
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    problems.push(`${name} must be a bare origin such as https://roster.example.com (no path, query, fragment or credentials)`);
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    problems.push(`${name} must use https: Microsoft Graph delivers change notifications only to a public https URL (http is accepted for localhost, for the emulator)`);
  }
  return { enabled: true, url, healthyIntervalMinutes: v.NOTIFICATION_SYNC_INTERVAL_MINUTES ?? 60 };
}
