import { request as httpsRequest } from 'node:https';
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';

/**
 * MSAL's network module over `https.request`, trusting one extra CA (the
 * emulator's). MSAL parses every answer as JSON, errors included.
 */
export function caTrustingNetworkClient(caPem: string): INetworkModule {
  const send = <T>(method: 'GET' | 'POST', url: string, options: NetworkRequestOptions = {}, timeoutMs?: number): Promise<NetworkResponse<T>> =>
    new Promise((resolve, reject) => {
      const body = method === 'POST' ? (options.body ?? '') : undefined;
      const headers: Record<string, string | number> = { ...(options.headers ?? {}) };
      if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
      const req = httpsRequest(url, { method, headers, ca: caPem, ...(timeoutMs ? { timeout: timeoutMs } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const responseHeaders: Record<string, string> = {};
          for (const [key, value] of Object.entries(res.headers)) {
            if (value !== undefined) responseHeaders[key] = Array.isArray(value) ? value.join(', ') : value;
          }
          try {
            resolve({ status: res.statusCode ?? 0, headers: responseHeaders, body: (text ? JSON.parse(text) : {}) as T });
          } catch (err) {
            reject(new Error(`non-JSON answer (${res.statusCode}) from ${url}: ${(err as Error).message}`));
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  return {
    sendGetRequestAsync: (url, options, timeout) => send('GET', url, options, timeout),
    sendPostRequestAsync: (url, options) => send('POST', url, options),
  };
}
