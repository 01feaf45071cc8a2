import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';

describe('discovery and keys', () => {
  let emulator: TestEmulator;
  let contoso: Org;
  before(async () => {
    emulator = await startTestEmulator();
    contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
  });
  after(async () => {
    await emulator.close();
  });

  const getConfig = async (tenant: string) => {
    const res = await emulator.fetch(`${emulator.urls.authority}/${tenant}/v2.0/.well-known/openid-configuration`);
    return { res, body: (await res.json()) as Record<string, unknown> };
  };

  for (const word of ['common', 'organizations'] as const) {
    test(`${word}: template issuer, endpoints keep the word ${word}`, async () => {
      const { res, body } = await getConfig(word);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('cache-control'), 'max-age=86400, private');
      assert.equal(body.issuer, `${emulator.urls.authority}/{tenantid}/v2.0`);
      assert.equal(body.token_endpoint, `${emulator.urls.authority}/${word}/oauth2/v2.0/token`);
      assert.equal(body.jwks_uri, `${emulator.urls.authority}/${word}/discovery/v2.0/keys`);
      assert.equal(body.authorization_endpoint, `${emulator.urls.pages}/${word}/oauth2/v2.0/authorize`);
      assert.equal(body.end_session_endpoint, `${emulator.urls.pages}/${word}/oauth2/v2.0/logout`);
      assert.deepEqual(body.response_modes_supported, ['query', 'fragment', 'form_post']);
      assert.deepEqual(body.subject_types_supported, ['pairwise']);
      assert.deepEqual(body.id_token_signing_alg_values_supported, ['RS256']);
      assert.deepEqual(body.token_endpoint_auth_methods_supported, ['client_secret_post', 'private_key_jwt', 'client_secret_basic']);
      assert.ok((body.scopes_supported as string[]).includes('offline_access'));
      assert.ok((body.response_types_supported as string[]).includes('code'));
      assert.ok(Array.isArray(body.claims_supported));
      assert.equal(body.msgraph_host, new URL(emulator.urls.graph).host);
      assert.equal(body.cloud_instance_name, 'microsoftonline.com');
      assert.ok('tenant_region_scope' in body);
    });
  }

  test('consumers: the consumer tenant issuer, endpoints keep the word consumers', async () => {
    const { res, body } = await getConfig('consumers');
    assert.equal(res.status, 200);
    assert.equal(body.issuer, `${emulator.urls.authority}/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0`);
    assert.equal(body.token_endpoint, `${emulator.urls.authority}/consumers/oauth2/v2.0/token`);
  });

  test('tenant GUID: every URL carries the GUID', async () => {
    const id = contoso.tenant.id;
    const { res, body } = await getConfig(id);
    assert.equal(res.status, 200);
    assert.equal(body.issuer, `${emulator.urls.authority}/${id}/v2.0`);
    assert.equal(body.token_endpoint, `${emulator.urls.authority}/${id}/oauth2/v2.0/token`);
    assert.equal(body.jwks_uri, `${emulator.urls.authority}/${id}/discovery/v2.0/keys`);
    assert.equal(body.authorization_endpoint, `${emulator.urls.pages}/${id}/oauth2/v2.0/authorize`);
    assert.equal(body.end_session_endpoint, `${emulator.urls.pages}/${id}/oauth2/v2.0/logout`);
    assert.equal(body.tenant_region_scope, 'NA');
  });

  test('verified domain: resolves to the tenant and every URL carries its GUID', async () => {
    const { res, body } = await getConfig('contoso.com');
    assert.equal(res.status, 200);
    assert.equal(body.issuer, `${emulator.urls.authority}/${contoso.tenant.id}/v2.0`);
    assert.equal(body.token_endpoint, `${emulator.urls.authority}/${contoso.tenant.id}/oauth2/v2.0/token`);
  });

  test('AADSTS90002: unknown tenant answers 400 invalid_tenant in Entra shape', async () => {
    const { res, body } = await getConfig('nowhere.example');
    assert.equal(res.status, 400);
    assert.equal(body.error, 'invalid_tenant');
    assert.match(String(body.error_description), /^AADSTS90002: Tenant 'nowhere.example' not found/);
    assert.deepEqual(body.error_codes, [90002]);
    assert.ok(body.trace_id && body.correlation_id && body.timestamp);
    const keys = await emulator.fetch(`${emulator.urls.authority}/11111111-2222-3333-4444-555555555555/discovery/v2.0/keys`);
    assert.equal(keys.status, 400);
  });

  test('JWKS: more than one key, each with kid, x5t, x5c and the template issuer; rotation adds a key', async () => {
    const fetchKeys = async (tenant: string) => {
      const res = await emulator.fetch(`${emulator.urls.authority}/${tenant}/discovery/v2.0/keys`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('cache-control'), 'max-age=86400, private');
      return ((await res.json()) as { keys: Array<Record<string, unknown>> }).keys;
    };
    const keys = await fetchKeys('common');
    assert.ok(keys.length > 1, 'the set always holds more than one key');
    for (const key of keys) {
      assert.equal(key.kty, 'RSA');
      assert.equal(key.use, 'sig');
      assert.equal(typeof key.kid, 'string');
      assert.equal(key.x5t, key.kid);
      assert.ok(Array.isArray(key.x5c) && (key.x5c as string[]).length === 1);
      assert.equal(key.issuer, `${emulator.urls.authority}/{tenantid}/v2.0`);
    }
    assert.equal((await fetchKeys(contoso.tenant.id)).length, keys.length);
    const kid = await emulator.ctx.keyring.rotate();
    const rotated = await fetchKeys('organizations');
    assert.ok(rotated.some((k) => k.kid === kid));
    assert.ok(!keys.some((k) => k.kid === kid));
  });
});
