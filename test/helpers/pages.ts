import type { TestEmulator } from './emulator.ts';

export interface PageResult {
  status: number;
  location: string | null;
  html: string;
  /** Hidden `txn` field of the page's form, if any. */
  txn: string | undefined;
  /** Absolute URL the page's form posts to, if any. */
  action: string | undefined;
}

/**
 * A minimal browser for the emulator's pages: keeps the SSO cookie, never
 * follows redirects, and posts forms the way a person would.
 */
export class PagesClient {
  readonly #emulator: TestEmulator;
  #cookies = new Map<string, string>();

  constructor(emulator: TestEmulator) {
    this.#emulator = emulator;
  }

  get cookieCount(): number {
    return this.#cookies.size;
  }

  async get(url: string): Promise<PageResult> {
    return this.#send(url, { method: 'GET' });
  }

  async post(url: string, fields: Record<string, string>): Promise<PageResult> {
    return this.#send(url, { method: 'POST', body: new URLSearchParams(fields).toString(), contentType: 'application/x-www-form-urlencoded' });
  }

  /** Posts the page's own form with its hidden fields plus `fields`. */
  async submit(page: PageResult, fields: Record<string, string>): Promise<PageResult> {
    if (!page.action || !page.txn) throw new Error(`page has no form:\n${page.html.slice(0, 500)}`);
    const step = /name="step" value="([^"]+)"/.exec(page.html)?.[1] ?? '';
    return this.post(page.action, { txn: page.txn, step, ...fields });
  }

  async #send(url: string, init: { method: string; body?: string; contentType?: string }): Promise<PageResult> {
    const headers: Record<string, string> = {};
    if (this.#cookies.size > 0) headers.cookie = [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (init.contentType) headers['content-type'] = init.contentType;
    const res = await this.#emulator.fetch(url, { method: init.method, headers, redirect: 'manual', ...(init.body !== undefined ? { body: init.body } : {}) });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/max-age=0/i.test(cookie) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    const html = await res.text();
    const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
    return {
      status: res.status,
      location: res.headers.get('location'),
      html,
      txn: /name="txn" value="([^"]+)"/.exec(html)?.[1],
      action: action ? new URL(action.replace(/&amp;/g, '&'), url).toString() : undefined,
    };
  }
}

export interface CodeFlowOptions {
  tenant?: string;
  username: string;
  password?: string;
  scope?: string;
  redirectUri?: string;
  verifier?: string;
  nonce?: string;
  extra?: Record<string, string>;
}

/** Authorize URL for the demo app with PKCE (S256). */
export function authorizeUrl(emulator: TestEmulator, options: Omit<CodeFlowOptions, 'username'> & { challenge?: string }): string {
  const params = new URLSearchParams({
    client_id: emulator.demoApp.clientId,
    response_type: 'code',
    redirect_uri: options.redirectUri ?? 'http://localhost:3000/auth/callback',
    scope: options.scope ?? 'openid profile offline_access User.Read',
    state: 'st-1',
    ...(options.nonce ? { nonce: options.nonce } : {}),
    ...(options.challenge ? { code_challenge: options.challenge, code_challenge_method: 'S256' } : {}),
    ...(options.extra ?? {}),
  });
  return `${emulator.urls.pages}/${options.tenant ?? 'organizations'}/oauth2/v2.0/authorize?${params}`;
}

/** Signs a consented user in through the page and returns the code from the redirect. */
export async function signInForCode(emulator: TestEmulator, options: CodeFlowOptions): Promise<{ code: string; verifier: string; browser: PagesClient }> {
  const { createHash, randomBytes } = await import('node:crypto');
  const verifier = options.verifier ?? randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const browser = new PagesClient(emulator);
  const page = await browser.get(authorizeUrl(emulator, { ...options, challenge }));
  const landed = await browser.submit(page, { username: options.username, password: options.password ?? 'pw' });
  const code = landed.location ? new URL(landed.location).searchParams.get('code') : null;
  if (!code) throw new Error(`no code: ${landed.status} ${landed.location}\n${landed.html.slice(0, 400)}`);
  return { code, verifier, browser };
}
