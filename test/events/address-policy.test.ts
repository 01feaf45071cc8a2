import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { guardedLookup, refusedAddressReason, refusedHostReason } from '../../src/events/address-policy.ts';

describe('webhook address policy', () => {
  it('the default refuses private, link-local, shared, unique-local, multicast and unspecified addresses, and allows public and loopback ones', () => {
    const refused = ['10.0.0.1', '172.16.5.4', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', 'fd00::1', 'fe80::1', '::', '::ffff:10.0.0.1', '::ffff:169.254.169.254', 'ff02::1'];
    for (const address of refused) assert.match(refusedAddressReason(address, 'public-and-loopback') ?? '', /refuses/, address);
    for (const address of ['93.184.216.34', '172.32.0.1', '2606:4700::1111', '127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
      assert.equal(refusedAddressReason(address, 'public-and-loopback'), null, address);
    }
    assert.match(refusedAddressReason('169.254.169.254', 'public-and-loopback')!, /link-local/);
    assert.match(refusedAddressReason('::ffff:192.168.0.1', 'public-and-loopback')!, /192\.168\.0\.1 is a private/);
  });

  it('"public" refuses loopback too; "any" refuses nothing', () => {
    for (const address of ['127.0.0.1', '::1']) assert.match(refusedAddressReason(address, 'public')!, /loopback/, address);
    assert.match(refusedHostReason('localhost', 'public')!, /loopback/);
    assert.match(refusedHostReason('api.localhost', 'public')!, /loopback/);
    assert.equal(refusedAddressReason('93.184.216.34', 'public'), null);
    for (const address of ['10.0.0.1', '169.254.169.254', '127.0.0.1', 'fd00::1']) assert.equal(refusedAddressReason(address, 'any'), null, address);
  });

  it('hosts: IP literals (bracketed or not) are judged by range, names are left to the connection', () => {
    assert.match(refusedHostReason('[fd00::1]', 'public-and-loopback')!, /unique-local/);
    assert.match(refusedHostReason('10.9.8.7', 'public-and-loopback')!, /private/);
    assert.equal(refusedHostReason('hooks.example.com', 'public'), null);
  });

  it('the guarded lookup keeps only allowed addresses, and fails when none is left', async () => {
    const lookup = guardedLookup('public-and-loopback', (_host, _options, callback) => callback(null, [{ address: '10.0.0.8', family: 4 }, { address: '93.184.216.34', family: 4 }]));
    const all = await new Promise<unknown>((resolve, reject) => lookup('mixed.example', { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));
    assert.deepEqual(all, [{ address: '93.184.216.34', family: 4 }]);
    const one = await new Promise<unknown>((resolve, reject) => lookup('mixed.example', {}, (err, address, family) => (err ? reject(err) : resolve([address, family]))));
    assert.deepEqual(one, ['93.184.216.34', 4]);

    const internal = guardedLookup('public-and-loopback', (_host, _options, callback) => callback(null, [{ address: '192.168.4.4', family: 4 }]));
    await assert.rejects(
      new Promise((resolve, reject) => internal('internal.example', {}, (err) => (err ? reject(err) : resolve(undefined)))),
      (err: Error & { code?: string }) => err.code === 'ERR_WEBHOOK_ADDRESS_REFUSED' && /internal\.example resolves only to refused addresses: 192\.168\.4\.4 is a private/.test(err.message),
    );
  });
});
