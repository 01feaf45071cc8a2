import { Agent, fetch as undiciFetch } from 'undici';
import { startEmulator, type EmulatorOptions, type RunningEmulator } from '../../src/emulator/server.ts';

export interface TestEmulator extends RunningEmulator {
  /** `fetch` that trusts the emulator's CA, for the HTTPS back channel (and works for the http pages too). */
  fetch: typeof undiciFetch;
  /** Calls the control API with the control token; throws on a non-2xx answer. */
  control<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

/** Starts an in-memory emulator on free ports; stop it with `close()`. */
export async function startTestEmulator(options: EmulatorOptions = {}): Promise<TestEmulator> {
  const emulator = await startEmulator({ dataDir: null, ...options });
  const dispatcher = new Agent({ connect: { ca: emulator.caCertPem } });
  const boundFetch = ((input: Parameters<typeof undiciFetch>[0], init: Parameters<typeof undiciFetch>[1] = {}) =>
    undiciFetch(input, { ...init, dispatcher })) as typeof undiciFetch;
  const control = async <T,>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await boundFetch(`${emulator.urls.control}${path}`, {
      method,
      headers: { authorization: `Bearer ${emulator.ctx.controlToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`control ${method} ${path} answered ${res.status}: ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  return {
    ...emulator,
    fetch: boundFetch,
    control,
    close: async () => {
      await emulator.close();
      await dispatcher.close();
    },
  };
}

/** The settings that point a `roster` process at this emulator: its app registration, hosts and certificate authority (the PEM file at `caFile`). */
export function rosterSettingsFor(emulator: RunningEmulator, caFile: string): Record<string, string> {
  return {
    ENTRA_CLIENT_ID: emulator.demoApp.clientId,
    ENTRA_CLIENT_SECRET: emulator.demoApp.clientSecret,
    ENTRA_AUTHORITY_HOST: emulator.urls.authority,
    GRAPH_BASE_URL: emulator.urls.graph,
    NODE_EXTRA_CA_CERTS: caFile,
  };
}
