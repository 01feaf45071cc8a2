import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';
import { Agent, fetch as undiciFetch, type Dispatcher } from 'undici';

export type Fetch = (input: string | URL, init?: Parameters<typeof undiciFetch>[1]) => ReturnType<typeof undiciFetch>;

/**
 * Every outbound call to the identity provider and Graph goes through one
 * connection pool. With `trustedCaPem` (the emulator's certificate authority)
 * only that CA is trusted; without it, Node's default roots plus
 * NODE_EXTRA_CA_CERTS apply, as for any Entra-compatible server.
 */
export class OutboundHttp {
  readonly dispatcher: Dispatcher;
  readonly fetch: Fetch;

  constructor(options: { trustedCaPem?: string; timeoutMs?: number } = {}) {
    this.dispatcher = new Agent({
      connect: options.trustedCaPem ? { ca: options.trustedCaPem } : {},
      headersTimeout: options.timeoutMs ?? 30_000,
      bodyTimeout: options.timeoutMs ?? 30_000,
    });
    this.fetch = (input, init = {}) => undiciFetch(input, { ...init, dispatcher: this.dispatcher });
  }

  /**
   * MSAL's network module over this pool. MSAL's own client uses the global
   * fetch, which cannot be told to trust a private CA for one host.
   */
  msalNetworkModule(): INetworkModule {
    const send = async <T>(url: string, method: 'GET' | 'POST', options: NetworkRequestOptions = {}, timeoutMs?: number): Promise<NetworkResponse<T>> => {
      const response = await this.fetch(url, {
        method,
        headers: options.headers ?? {},
        ...(method === 'POST' ? { body: options.body ?? '' } : {}),
        ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
      });
      const headers: Record<string, string> = {};
      response.headers.forEach((value, key) => {
        headers[key] = value;
      });
      const text = await response.text();
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : {};
      } catch {
        // Proxies and load balancers answer errors in HTML; MSAL reads the status and a JSON body.
        body = { error: 'invalid_response', error_description: `HTTP ${response.status} with a body that is not JSON` };
      }
      return { headers, body: body as T, status: response.status };
    };
    return {
      sendGetRequestAsync: (url, options, timeout) => send(url, 'GET', options, timeout),
      sendPostRequestAsync: (url, options) => send(url, 'POST', options),
    };
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
