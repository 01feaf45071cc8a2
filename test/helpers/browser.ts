import type { Dispatcher } from 'undici';
import { fetch as undiciFetch } from 'undici';

export interface Hop {
  url: string;
  status: number;
  location: string | null;
  headers: Headers;
  html: string;
}

/**
 * A small scripted browser: one cookie jar for every localhost port (as real
 * browsers share cookies across ports), manual redirects so each hop can be
 * inspected, and same-origin `Origin` headers on form posts.
 */
export class Browser {
  readonly cookies = new Map<string, { value: string; raw: string }>();
  readonly #dispatcher: Dispatcher | undefined;

  constructor(dispatcher?: Dispatcher) {
    this.#dispatcher = dispatcher;
  }

  async get(url: string, headers: Record<string, string> = {}): Promise<Hop> {
    return this.#send(url, 'GET', undefined, headers);
  }

  async post(url: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Hop> {
    return this.#send(url, 'POST', new URLSearchParams(fields).toString(), { origin: new URL(url).origin, 'content-type': 'application/x-www-form-urlencoded', ...headers });
  }

  /** Follows redirects from `hop` until a page (non-3xx) or `stopAt` matches the location. */
  async follow(hop: Hop, stopAt?: (url: string) => boolean, limit = 10): Promise<Hop> {
    let current = hop;
    for (let i = 0; i < limit && current.location; i++) {
      const next = new URL(current.location, current.url).href;
      if (stopAt?.(next)) return current;
      current = await this.get(next);
    }
    return current;
  }

  /** Submits the first form of a page with its hidden fields, plus `fields`. */
  async submitForm(page: Hop, fields: Record<string, string> = {}, options: { buttonValue?: Record<string, string>; formIndex?: number } = {}): Promise<Hop> {
    const forms = [...page.html.matchAll(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/g)];
    const form = forms[options.formIndex ?? 0];
    if (!form) throw new Error(`no form on ${page.url}:\n${page.html.slice(0, 600)}`);
    const hidden: Record<string, string> = {};
    for (const input of form[2]!.matchAll(/<input[^>]*type="hidden"[^>]*>/g)) {
      const name = /name="([^"]+)"/.exec(input[0])?.[1];
      const value = /value="([^"]*)"/.exec(input[0])?.[1];
      if (name) hidden[name] = decodeHtml(value ?? '');
    }
    const action = new URL(decodeHtml(form[1]!), page.url).href;
    return this.post(action, { ...hidden, ...(options.buttonValue ?? {}), ...fields });
  }

  cookie(name: string): string | undefined {
    return this.cookies.get(name)?.value;
  }

  async #send(url: string, method: string, body: string | undefined, headers: Record<string, string>): Promise<Hop> {
    const allHeaders: Record<string, string> = { ...headers };
    if (this.cookies.size > 0) allHeaders.cookie = [...this.cookies].map(([k, v]) => `${k}=${v.value}`).join('; ');
    const res = await undiciFetch(url, { method, headers: allHeaders, redirect: 'manual', ...(body !== undefined ? { body } : {}), ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}) });
    for (const raw of res.headers.getSetCookie()) {
      const [pair] = raw.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(raw) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, { value, raw });
    }
    return { url, status: res.status, location: res.headers.get('location'), headers: res.headers as unknown as Headers, html: await res.text() };
  }
}

export function decodeHtml(value: string): string {
  return value.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#x2F;/g, '/');
}
