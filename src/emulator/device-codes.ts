import { randomBytes, randomInt } from 'node:crypto';
import type { SignedInUser } from './grants.ts';
import { randomToken, type PathTenant } from './identity.ts';

/** A device code the terminal polls with, and the person's answer once they have given it. */
export interface DeviceAuthorization {
  deviceCode: string;
  userCode: string;
  clientId: string;
  path: PathTenant;
  scopes: string[];
  expiresAtMs: number;
  intervalSeconds: number;
  /** When the terminal last polled: polling faster than the interval is answered with `slow_down`. */
  lastPollMs: number | null;
  /** Set on the completion page: who signed in and with which scopes, or that they refused. */
  outcome?: { approved: true; account: SignedInUser; scopes: string[] } | { approved: false };
  /** The sign-in started from the code page, so its answer can find this entry. */
  signInState: string;
}

export const DEVICE_CODE_LIFETIME_SECONDS = 900;
// Entra's user codes: 9 characters from a set without look-alikes.
const USER_CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/** Device codes issued and not yet redeemed or expired; held in memory only, as they live for 15 minutes. */
export class DeviceAuthorizations {
  readonly #byDeviceCode = new Map<string, DeviceAuthorization>();
  /** Seconds between polls that Entra asks for (5); tests lower it. */
  intervalSeconds = 5;

  start(init: { clientId: string; path: PathTenant; scopes: string[]; nowMs: number }): DeviceAuthorization {
    this.prune(init.nowMs);
    let userCode: string;
    do {
      userCode = Array.from({ length: 9 }, () => USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)]).join('');
    } while (this.byUserCode(userCode, init.nowMs));
    const entry: DeviceAuthorization = {
      deviceCode: randomToken(48),
      userCode,
      clientId: init.clientId,
      path: init.path,
      scopes: init.scopes,
      expiresAtMs: init.nowMs + DEVICE_CODE_LIFETIME_SECONDS * 1000,
      intervalSeconds: this.intervalSeconds,
      lastPollMs: null,
      signInState: randomBytes(24).toString('base64url'),
    };
    this.#byDeviceCode.set(entry.deviceCode, entry);
    return entry;
  }

  byDeviceCode(deviceCode: string | undefined): DeviceAuthorization | undefined {
    return deviceCode ? this.#byDeviceCode.get(deviceCode) : undefined;
  }

  /** The waiting entry a typed code names (case and dashes ignored), unless expired or answered. */
  byUserCode(typed: string, nowMs: number): DeviceAuthorization | undefined {
    const code = typed.toUpperCase().replace(/[\s-]/g, '');
    for (const entry of this.#byDeviceCode.values()) {
      if (entry.userCode === code && entry.expiresAtMs > nowMs && !entry.outcome) return entry;
    }
    return undefined;
  }

  bySignInState(state: string | undefined): DeviceAuthorization | undefined {
    if (!state) return undefined;
    for (const entry of this.#byDeviceCode.values()) if (entry.signInState === state) return entry;
    return undefined;
  }

  finish(entry: DeviceAuthorization): void {
    this.#byDeviceCode.delete(entry.deviceCode);
  }

  prune(nowMs: number): void {
    for (const [key, entry] of this.#byDeviceCode) if (entry.expiresAtMs + 60_000 <= nowMs) this.#byDeviceCode.delete(key);
  }
}
