import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url));

describe('roster webhooks', () => {
  let dir: string;
  const roster = (...args: string[]) => {
    const result = spawnSync(process.execPath, [BIN, 'webhooks', ...args], { cwd: dir, env: { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: join(dir, 'data') }, encoding: 'utf8' });
    return { code: result.status, out: result.stdout, err: result.stderr };
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'roster-webhooks-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('rules 32 and 33: create prints the secret once; list never shows it; rotate, disable, enable and delete act on the endpoint; bad input exits 2 naming the field', async () => {
    const created = roster('create', '--url', 'https://app.example.com/hooks', '--types', 'user.created,user.deleted');
    assert.equal(created.code, 0, created.err);
    const secret = /secret: (whsec_\S+)/.exec(created.out)?.[1];
    assert.ok(secret);
    const id = /^(ep_\S+)/.exec(created.out)?.[1];
    assert.ok(id);
    const listed = roster('list');
    assert.match(listed.out, new RegExp(`${id}  https://app.example.com/hooks  events: user.created,user.deleted  tenant: all  enabled`));
    assert.ok(!listed.out.includes(secret.slice(6)));
    const rotated = roster('rotate-secret', '--id', id);
    assert.equal(rotated.code, 0, rotated.err);
    assert.notEqual(/secret: (whsec_\S+)/.exec(rotated.out)?.[1], secret);
    assert.match(roster('disable', '--id', id).out, /disabled \(disabled by an operator\)/);
    assert.match(roster('enable', '--id', id).out, /enabled$/m);
    assert.equal(roster('delete', '--id', id).code, 0);
    assert.equal(roster('list').out, '');

    const plain = roster('create', '--url', 'http://example.com/hooks');
    assert.equal(plain.code, 2);
    assert.match(plain.err, /url must use https/);
    assert.match(roster('create', '--url', 'https://a.example', '--types', 'nope').err, /event_types/);
    assert.equal(roster('delete', '--id', 'ep_missing').code, 1);
    assert.equal(roster('explode').code, 2);
    assert.equal(roster('rotate-secret').code, 2);
  });
});
