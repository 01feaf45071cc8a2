import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, consent } from '../helpers/fixtures.ts';
import { signInForCode } from '../helpers/pages.ts';

const REDIRECT_URI = 'http://localhost:3000/auth/callback';

/** A demo restarted in the middle of a sign-in: the browser comes back with a code the first process issued. */
describe('codes and refresh tokens survive a restart', () => {
  const running = new Set<TestEmulator>();
  let dataDir: string;
  after(async () => {
    for (const emulator of running) await emulator.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const start = async () => {
    const emulator = await startTestEmulator({ dataDir });
    running.add(emulator);
    return emulator;
  };
  const stop = async (emulator: TestEmulator) => {
    await emulator.save();
    await emulator.close();
    running.delete(emulator);
  };
  const token = async (emulator: TestEmulator, form: Record<string, string>) => {
    const res = await emulator.fetch(`${emulator.urls.authority}/organizations/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: emulator.demoApp.clientId, client_secret: emulator.demoApp.clientSecret, ...form }).toString(),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  test('hardening 15: a code issued before a restart is redeemed after it, once; a refresh token too; expiry still holds', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'roster-emulator-restart-'));
    const first = await start();
    const org = addOrg(first.ctx, 'Contoso', 'contoso.com');
    consent(first.ctx, org);
    const { code, verifier } = await signInForCode(first, { username: 'user@contoso.com' });
    const early = await signInForCode(first, { username: 'user@contoso.com' });
    const redeemed = await token(first, { grant_type: 'authorization_code', code: early.code, code_verifier: early.verifier, redirect_uri: REDIRECT_URI });
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
    const refreshToken = redeemed.body.refresh_token as string;
    assert.ok(refreshToken);
    await stop(first);

    const second = await start();
    const after = await token(second, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT_URI });
    assert.equal(after.status, 200, JSON.stringify(after.body));
    assert.ok(after.body.id_token);
    const again = await token(second, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT_URI });
    assert.equal(again.status, 400);
    assert.deepEqual(again.body.error_codes, [54005]);
    const refreshed = await token(second, { grant_type: 'refresh_token', refresh_token: refreshToken });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));

    const pending = await signInForCode(second, { username: 'user@contoso.com' });
    await stop(second);
    const third = await start();
    third.ctx.clock.advance(601);
    const expired = await token(third, { grant_type: 'authorization_code', code: pending.code, code_verifier: pending.verifier, redirect_uri: REDIRECT_URI });
    assert.equal(expired.status, 400);
    assert.deepEqual(expired.body.error_codes, [70008]);
  });
});
