import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { updateDotEnv } from '../../src/config/dotenv.ts';

describe('.env writer', () => {
  it('appends what is missing, keeps what differs unless forced, leaves comments and other lines alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'roster-dotenv-'));
    try {
      const file = join(dir, '.env');
      await writeFile(file, '# mine\nPORT=3000\nexport PUBLIC_URL=http://localhost:1\nLOG_LEVEL=debug');
      const kept = await updateDotEnv(file, { PORT: '3000', PUBLIC_URL: 'http://localhost:2', ENTRA_CLIENT_ID: 'abc' }, { force: false });
      assert.deepEqual(kept.map((c) => `${c.key}:${c.status}`), ['PORT:unchanged', 'PUBLIC_URL:skipped', 'ENTRA_CLIENT_ID:written']);
      assert.equal(readFileSync(file, 'utf8'), '# mine\nPORT=3000\nexport PUBLIC_URL=http://localhost:1\nLOG_LEVEL=debug\nENTRA_CLIENT_ID=abc\n');
      assert.equal(statSync(file).mode & 0o777, 0o600);

      const replaced = await updateDotEnv(file, { PUBLIC_URL: 'http://localhost:2' }, { force: false, replace: new Set(['PUBLIC_URL']) });
      assert.equal(replaced[0]!.status, 'replaced');
      assert.match(readFileSync(file, 'utf8'), /^PUBLIC_URL=http:\/\/localhost:2$/m);
      assert.doesNotMatch(readFileSync(file, 'utf8'), /localhost:1/);

      await assert.rejects(updateDotEnv(file, { BAD: 'two\nlines' }, { force: true }), /values one line/, 'a value cannot smuggle another setting in');
      await assert.rejects(updateDotEnv(file, { 'X=Y': 'z' }, { force: true }), /names are capitals/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
