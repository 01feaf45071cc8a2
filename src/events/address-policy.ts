import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Which addresses a webhook may be sent to (`WEBHOOK_ADDRESSES`). A webhook URL
 * is typed by whoever holds a key with the webhooks scope, so without a rule
 * Roster would post, signed, to anything it can reach: a cloud metadata service
 * (169.254.169.254), a database's admin port, a router.
 * - `public-and-loopback` (default): public addresses, and loopback for a receiver
 *   on the same machine (security rule 33); private, link-local, shared, unique-local,
 *   multicast and reserved ranges are refused.
 * - `public`: loopback refused too.
 * - `any`: no address check (receivers on a private network).
 */
export const WEBHOOK_ADDRESS_POLICIES = ['public-and-loopback', 'public', 'any'] as const;
export type WebhookAddressPolicy = (typeof WEBHOOK_ADDRESS_POLICIES)[number];

const RANGE_WORDS: Record<string, string> = {
  private: 'private (RFC 1918)',
  linkLocal: 'link-local',
  carrierGradeNat: 'shared (carrier-grade NAT)',
  uniqueLocal: 'unique-local',
  loopback: 'loopback',
  unspecified: 'unspecified',
  multicast: 'multicast',
  broadcast: 'broadcast',
};

/** Why `address` (an IP literal) may not receive webhooks under `policy`, or null when it may. */
export function refusedAddressReason(address: string, policy: WebhookAddressPolicy): string | null {
  if (policy === 'any') return null;
  const bare = address.replace(/^\[|\]$/g, '');
  if (!ipaddr.isValid(bare)) return `${address} is not an IP address`;
  let parsed = ipaddr.parse(bare);
  // ::ffff:10.0.0.1 reaches 10.0.0.1: judge the IPv4 address inside.
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  const range = parsed.range();
  if (range === 'unicast') return null;
  if (range === 'loopback' && policy === 'public-and-loopback') return null;
  return `${bare} is a ${RANGE_WORDS[range] ?? `reserved (${range})`} address, which WEBHOOK_ADDRESSES=${policy} refuses`;
}

/** The URL's host judged before any connection: IP literals by range, and `localhost` names as loopback. */
export function refusedHostReason(hostname: string, policy: WebhookAddressPolicy): string | null {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIP(host) !== 0) return refusedAddressReason(host, policy);
  if (host === 'localhost' || host.endsWith('.localhost')) return refusedAddressReason('127.0.0.1', policy);
  return null;
}

export class RefusedAddressError extends Error {
  readonly code = 'ERR_WEBHOOK_ADDRESS_REFUSED';
}

type Resolver = (hostname: string, options: LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

/**
 * A `lookup` for the delivery connections that keeps only allowed addresses.
 * Checking the name once when the endpoint is saved is not enough: its DNS can
 * later answer with an internal address (DNS rebinding), so the check is made
 * on the very addresses the socket connects to.
 */
export function guardedLookup(policy: WebhookAddressPolicy, resolve: Resolver = dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const allowed = addresses.filter((a) => refusedAddressReason(a.address, policy) === null);
      if (allowed.length === 0) {
        const reasons = addresses.map((a) => refusedAddressReason(a.address, policy)).join('; ');
        return callback(new RefusedAddressError(`${hostname} resolves only to refused addresses: ${reasons}`), '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}
