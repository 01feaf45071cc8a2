import type { Clock } from './clock.ts';
import type { DeviceAuthorizations } from './device-codes.ts';
import type { FaultInjector, RequestLog } from './faults.ts';
import type { GrantStore } from './grants.ts';
import type { PageReadAhead } from './graph-readahead.ts';
import type { SigningKeyring } from './keys.ts';
import type { Directory } from './model.ts';
import type { SsoSessions } from './signin/sso-session.ts';
import type { SignInTransactions } from './signin/transaction.ts';
import type { Subscriptions } from './subscriptions.ts';

/** Everything a route of the emulator needs; one per running emulator. */
export interface EmulatorContext {
  directory: Directory;
  keyring: SigningKeyring;
  clock: Clock;
  faults: FaultInjector;
  requestLog: RequestLog;
  /** Authorization codes and refresh tokens issued (saved with the directory). */
  grants: GrantStore;
  /** Browser sessions of the sign-in pages (the SSO cookie). */
  sessions: SsoSessions;
  /** Sign-ins waiting for the person at the browser. */
  signIns: SignInTransactions;
  /** Device codes a terminal polls with until a person signs in on `/devicelogin`. */
  deviceCodes: DeviceAuthorizations;
  /** `/users` pages built ahead of the client's next request. */
  pageReadAhead: PageReadAhead;
  /** Change-notification subscriptions and their deliveries. */
  subscriptions: Subscriptions;
  /** Protects the control API (`Authorization: Bearer <token>`). */
  controlToken: string;
  /** Client id of the built-in demo app registration. */
  demoAppId: string;
  /** Data folder for state and certificates; null keeps everything in memory. */
  dataDir: string | null;
  urls: EmulatorUrls;
  /** Writes state and signing keys to the data folder (set by the server; absent in memory-only use). */
  save?: () => Promise<void>;
}

export interface EmulatorUrls {
  /** HTTPS back channel: discovery, keys, token endpoint. `https://localhost:PORT`. */
  authority: string;
  /** Graph base, `https://localhost:PORT` (the same listener; routes are `/v1.0/...`). */
  graph: string;
  /** Plain-http pages a browser opens (authorize, admin consent, logout). `http://localhost:PORT`. */
  pages: string;
  /** Control API, on the pages listener. `http://localhost:PORT/_emulator`. */
  control: string;
}

/** The issuer of v2 ID tokens for a tenant, `{tenantid}` left as a template when `tid` is omitted. */
export function issuerFor(ctx: EmulatorContext, tid = '{tenantid}'): string {
  return `${ctx.urls.authority}/${tid}/v2.0`;
}

/** The issuer of v1 access tokens (Graph app and delegated tokens). */
export function accessTokenIssuerFor(tid: string): string {
  return `https://sts.windows.net/${tid}/`;
}

export const GRAPH_AUDIENCE = 'https://graph.microsoft.com';
export const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';
