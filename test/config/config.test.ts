import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, environmentWithDotEnv, loadConfig } from '../../src/config/config.ts';
import { startupWarnings } from '../../src/commands/serve.ts';

const CLIENT_ID = '11111111-2222-4333-8444-555555555555';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, '/srv/roster');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('configuration', () => {
  it('no Entra settings at all means demo mode on SQLite under ./data', () => {
    const config = loadConfig({}, '/srv/roster');
    assert.equal(config.demo, true);
    assert.equal(config.entra, null);
    assert.deepEqual(config.database, { engine: 'sqlite', path: '/srv/roster/data/roster.db' });
    assert.equal(config.port, 3000);
    assert.equal(config.publicUrl.href, 'http://localhost:3000/');
  });

  it('production settings: secret, certificate, PostgreSQL and Microsoft hosts by default', () => {
    const config = loadConfig(
      { ENTRA_CLIENT_ID: CLIENT_ID, ENTRA_CLIENT_SECRET: 's', PUBLIC_URL: 'https://roster.example.com', DATABASE_URL: 'postgres://u:p@db:5432/roster', PORT: '8080' },
      '/srv/roster',
    );
    assert.equal(config.demo, false);
    assert.equal(config.entra?.authorityHost.href, 'https://login.microsoftonline.com/');
    assert.equal(config.entra?.graphBaseUrl.href, 'https://graph.microsoft.com/');
    assert.deepEqual(config.database, { engine: 'postgres', url: 'postgres://u:p@db:5432/roster' });
    assert.equal(config.port, 8080);
  });

  it('each mistake is named with what to do about it', () => {
    assert.deepEqual(problemsOf({ PORT: 'eighty' }), ['PORT: PORT must be a whole number']);
    assert.match(problemsOf({ ENTRA_CLIENT_ID: 'my-app' })[0]!, /ENTRA_CLIENT_ID must be the application \(client\) id, a GUID/);
    assert.match(problemsOf({ ENTRA_CLIENT_ID: CLIENT_ID }).join('\n'), /ENTRA_CLIENT_SECRET or ENTRA_CLIENT_CERTIFICATE is needed/);
    assert.match(problemsOf({ ENTRA_CLIENT_SECRET: 'x' }).join('\n'), /ENTRA_CLIENT_ID is missing/);
    assert.match(problemsOf({ DATABASE_URL: 'mysql://x' }).join('\n'), /DATABASE_URL must be a PostgreSQL URL/);
    assert.match(problemsOf({ ENTRA_CLIENT_ID: CLIENT_ID, ENTRA_CLIENT_CERTIFICATE: 'missing.pem' }).join('\n'), /no file at \/srv\/roster\/missing\.pem/);
    assert.match(problemsOf({ ENTRA_CLIENT_ID: CLIENT_ID, ENTRA_CLIENT_SECRET: 's', PUBLIC_URL: 'http://roster.example.com' }).join('\n'), /must use https/);
    assert.match(problemsOf({ PUBLIC_URL: 'https://example.com/app' }).join('\n'), /bare origin/);
    assert.match(problemsOf({ ENTRA_AUTHORITY_HOST: 'http://login.example.com' }).join('\n'), /must use https/);
  });

  it('operators are (tenant id, object id) pairs of GUIDs; the metrics token has a minimum length', () => {
    const tid = '72F988BF-86F1-41AF-91AB-2D7CD011DB47';
    const oid = '0b6bd07f-1c55-4e1b-9d58-2f4c8c2a5f10';
    const config = loadConfig({ OPERATORS: ` ${tid}:${oid} , ${CLIENT_ID}:${CLIENT_ID}`, METRICS_TOKEN: 'a-long-enough-token' }, '/srv/roster');
    assert.deepEqual(config.operators, [
      { tenantId: tid.toLowerCase(), objectId: oid },
      { tenantId: CLIENT_ID, objectId: CLIENT_ID },
    ]);
    assert.equal(config.metricsToken, 'a-long-enough-token');
    assert.deepEqual(loadConfig({}, '/srv/roster').operators, []);
    assert.equal(loadConfig({}, '/srv/roster').metricsToken, null);

    assert.match(problemsOf({ OPERATORS: 'admin@contoso.com' }).join('\n'), /OPERATORS must be a comma-separated list of tenantId:objectId pairs/);
    assert.match(problemsOf({ OPERATORS: `${tid}` }).join('\n'), /OPERATORS/);
    assert.match(problemsOf({ METRICS_TOKEN: 'short' }).join('\n'), /METRICS_TOKEN must be at least 16 characters/);
  });

  it('the shutdown bound is 30 seconds unless SHUTDOWN_TIMEOUT_SECONDS gives a whole number from 1 to 600', () => {
    assert.equal(loadConfig({}, '/srv/roster').shutdownSeconds, 30);
    assert.equal(loadConfig({ SHUTDOWN_TIMEOUT_SECONDS: '5' }, '/srv/roster').shutdownSeconds, 5);
    assert.match(problemsOf({ SHUTDOWN_TIMEOUT_SECONDS: '0' }).join('\n'), /SHUTDOWN_TIMEOUT_SECONDS must be between 1 and 600/);
    assert.match(problemsOf({ SHUTDOWN_TIMEOUT_SECONDS: 'soon' }).join('\n'), /SHUTDOWN_TIMEOUT_SECONDS must be a whole number/);
  });

  it('hardening 7: TRUST_PROXY is off by default, and takes a hop count or proxy addresses and CIDRs, never "trust everyone"', () => {
    assert.equal(loadConfig({}, '/srv/roster').trustProxy, false);
    assert.equal(loadConfig({ TRUST_PROXY: '0' }, '/srv/roster').trustProxy, false);
    assert.equal(loadConfig({ TRUST_PROXY: '1' }, '/srv/roster').trustProxy, 1);
    assert.deepEqual(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.7 ,fd00::/8' }, '/srv/roster').trustProxy, ['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);
    for (const bad of ['true', 'yes', '10.0.0.0/33', 'fd00::/129', '10.0.0.1/8/8', 'proxy.example.com', '10.0.0.1,', '300']) {
      assert.match(problemsOf({ TRUST_PROXY: bad }).join('\n'), /TRUST_PROXY must be the number of proxies in front of Roster/, bad);
    }
  });

  it('hardening 7: start-up warns when an https PUBLIC_URL, so a TLS proxy in front, comes without TRUST_PROXY', () => {
    const behindProxy = { metricsToken: 'a-token-of-at-least-16-characters', publicUrl: new URL('https://roster.example.com') };
    const [warning, ...rest] = startupWarnings({ ...behindProxy, trustProxy: false });
    assert.match(warning ?? '', /TRUST_PROXY is not set: every client behind the TLS proxy shares its address/);
    assert.deepEqual(rest, []);
    assert.deepEqual(startupWarnings({ ...behindProxy, trustProxy: 1 }), []);
    assert.deepEqual(startupWarnings({ ...behindProxy, trustProxy: ['10.0.0.0/8'] }), []);
    assert.deepEqual(startupWarnings({ ...behindProxy, publicUrl: new URL('http://localhost:3000'), trustProxy: false }), [], 'served directly');
  });

  it('WEBHOOK_ADDRESSES defaults to public and loopback, and takes only its three policies', () => {
    assert.equal(loadConfig({}, '/srv/roster').webhooks.addressPolicy, 'public-and-loopback');
    assert.equal(loadConfig({ WEBHOOK_ADDRESSES: 'public' }, '/srv/roster').webhooks.addressPolicy, 'public');
    assert.equal(loadConfig({ WEBHOOK_ADDRESSES: 'any' }, '/srv/roster').webhooks.addressPolicy, 'any');
    for (const bad of ['private', 'true', 'PUBLIC']) assert.match(problemsOf({ WEBHOOK_ADDRESSES: bad }).join('\n'), /WEBHOOK_ADDRESSES must be one of public-and-loopback, public, any/, bad);
  });

  it('.env fills gaps but never overrides the real environment', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'roster-config-'));
    after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, '.env'), 'PORT=4000\nLOG_LEVEL=debug\n');
    const env = environmentWithDotEnv({ PORT: '5000' }, dir);
    const config = loadConfig(env, dir);
    assert.equal(config.port, 5000);
    assert.equal(config.logLevel, 'debug');
  });
});
