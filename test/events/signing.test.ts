import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { sign, signingKey } from '../../src/events/delivery.ts';

describe('webhook signatures', () => {
  it('are the bytes the standardwebhooks package makes, and verify with it, for any body', () => {
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const library = new Webhook(secret);
    const seconds = Math.floor(Date.now() / 1000);
    for (const body of ['{}', '{"data":{"display_name":"Zoë Ångström 北京"}}', JSON.stringify({ text: 'x'.repeat(5000) })]) {
      const signature = sign(signingKey(secret), 'evt_abc', seconds, body);
      assert.equal(signature, library.sign('evt_abc', new Date(seconds * 1000), body));
      library.verify(body, { 'webhook-id': 'evt_abc', 'webhook-timestamp': String(seconds), 'webhook-signature': signature });
      assert.throws(() => library.verify(`${body} `, { 'webhook-id': 'evt_abc', 'webhook-timestamp': String(seconds), 'webhook-signature': signature }));
    }
  });
});
