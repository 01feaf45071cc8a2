import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '../../src/emulator/random.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { rosterSettingsFor, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { demoApp } from '../helpers/fixtures.ts';
import { assertMirrors } from '../helpers/mirror.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url));
const USERS = 20_000;
const KILLS = 10;


/** The user events written for a tenant after `after`, by user id (each list should hold exactly one). */
async function userEventsById(db: TestStore, tenantId: string, after: number): Promise<Map<string, string[]>> {
  const rows = await db.store.db.selectFrom('events').select(['type', 'data']).where('tenant_id', '=', tenantId).where('sequence', '>', after).where('type', 'like', 'user.%').orderBy('sequence').execute();
  const byId = new Map<string, string[]>();
  for (const row of rows) {
    const id = (JSON.parse(row.data) as { id: string }).id;
    byId.set(id, [...(byId.get(id) ?? []), row.type]);
  }
  return byId;
}

/** What each user the emulator's change log names since `afterSeq` became, as the one event it is owed. */
function expectedEvents(tenant: Tenant, afterSeq: number, existedBefore: ReadonlySet<string>): Map<string, string> {
  const expected = new Map<string, string>();
  for (const { seq, userId } of tenant.changeLog) {
    if (seq <= afterSeq || expected.has(userId)) continue;
    const type = tenant.usersById.has(userId)
      ? existedBefore.has(userId) ? 'user.updated' : 'user.created'
      : tenant.deletedUsers.has(userId) ? 'user.soft_deleted' : 'user.deleted';
    expected.set(userId, type);
  }
  return expected;
}

async function lastSequence(db: TestStore): Promise<number> {
  const [last] = await db.store.db.selectFrom('events').select('sequence').orderBy('sequence', 'desc').limit(1).execute();
  return Number(last?.sequence ?? 0);
}

/** Rule 7 the hard way: `roster sync` killed with SIGKILL at random moments, restarted each time; events exactly once (sync rule 21). */
for (const engine of ENGINES) {
  describe(`a sync killed at any instant loses and duplicates nothing (${engine})`, () => {
    let emulator: TestEmulator;
    let db: TestStore;
    let tenant: Tenant;
    let dir: string;
    let env: NodeJS.ProcessEnv;
    const random = seededRandom(engine === 'sqlite' ? 7 : 11);

    before(async () => {
      emulator = await startTestEmulator();
      db = await openTestStore(engine);
      dir = await mkdtemp(join(tmpdir(), 'roster-crash-'));
      const caFile = join(dir, 'ca.pem');
      await writeFile(caFile, emulator.caCertPem);
      tenant = emulator.ctx.directory.addTenant({ displayName: 'Crashco', domains: ['crashco.onmicrosoft.com', 'crashco.com'] });
      emulator.ctx.directory.addUsersUnchecked(
        tenant,
        Array.from({ length: USERS }, (_, i) => ({ userPrincipalName: `u${i}@crashco.com`, displayName: `User ${i}`, jobTitle: i % 2 ? 'Engineer' : null, department: `D${i % 7}` })),
      );
      emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
      await new TenantRepository(db.store.db).activate({ id: tenant.id, displayName: 'Crashco', domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
      env = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...rosterSettingsFor(emulator, caFile),
        ...(engine === 'postgres' ? { DATABASE_URL: db.target } : { DATA_DIR: join(db.target, '..') }),
      };
    });
    after(async () => {
      await db.drop();
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    });

    /**
     * Runs `roster sync`. With `kill`, SIGKILLs it a random few milliseconds after
     * it reports its `afterPages`-th page: anywhere between two commits or inside one.
     */
    function runSync(args: string[], kill?: { afterPages: number; delayMs: number }): Promise<{ code: number | null; signal: string | null; stderr: string }> {
      const child = spawn(process.execPath, [BIN, 'sync', '--tenant', tenant.id, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      let pages = 0;
      let timer: NodeJS.Timeout | undefined;
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        pages += chunk.match(/ page \d+,/g)?.length ?? 0;
        if (kill && !timer && pages >= kill.afterPages) timer = setTimeout(() => child.kill('SIGKILL'), kill.delayMs);
      });
      return new Promise((resolve) =>
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          resolve({ code, signal, stderr });
        }),
      );
    }

    /** Kills that many runs; returns how many died in the middle of a round (a next link saved, more to read). */
    async function killRepeatedly(firstArgs: string[], maxPages: number): Promise<number> {
      let midRound = 0;
      for (let i = 0; i < KILLS; i++) {
        const result = await runSync(i === 0 ? firstArgs : [], { afterPages: 1 + Math.floor(random() * maxPages), delayMs: Math.floor(random() * 60) });
        if (result.signal !== 'SIGKILL') assert.equal(result.code, 0, result.stderr);
        const state = await db.store.db.selectFrom('sync_state').select('next_link').where('tenant_id', '=', tenant.id).executeTakeFirst();
        if (result.signal === 'SIGKILL' && state?.next_link) midRound += 1;
      }
      const final = await runSync([]);
      assert.equal(final.code, 0, final.stderr);
      return midRound;
    }


    it(`a ${USERS.toLocaleString('en-US')}-user full sync, killed ${KILLS} times`, async () => {
      const midRound = await killRepeatedly(['--full'], 2);
      assert.ok(midRound >= 5, `only ${midRound} runs were killed in the middle of the listing`);
      await assertMirrors(db.store, tenant, { deletedToo: true });
      const events = await userEventsById(db, tenant.id, 0);
      assert.equal(events.size, USERS);
      for (const user of tenant.users) assert.deepEqual(events.get(user.props.id), ['user.created'], `exactly one event for ${user.props.id}`);
    });

    it(`a delta sync of thousands of changes, killed ${KILLS} times`, async () => {
      const d = emulator.ctx.directory;
      const mark = await lastSequence(db);
      const fromSeq = tenant.seq;
      const existedBefore = new Set([...tenant.usersById.keys(), ...tenant.deletedUsers.keys()]);
      for (let i = 0; i < 3000; i++) d.editUser(tenant, tenant.users[(i * 7) % tenant.users.length]!.props.id, { jobTitle: `Title ${i}`, department: `Changed ${i % 5}` });
      for (let i = 0; i < 200; i++) d.softDeleteUser(tenant, tenant.users[i * 13]!.props.id);
      for (let i = 0; i < 100; i++) d.purgeUser(tenant, tenant.users[i * 17 + 1]!.props.id);
      for (let i = 0; i < 300; i++) d.addUser(tenant, { userPrincipalName: `new${i}@crashco.com`, displayName: `New ${i}` });
      const midRound = await killRepeatedly([], 1);
      assert.ok(midRound >= 1, `only ${midRound} runs were killed in the middle of the delta round`);
      await assertMirrors(db.store, tenant, { deletedToo: true });
      const expected = expectedEvents(tenant, fromSeq, existedBefore);
      const events = await userEventsById(db, tenant.id, mark);
      assert.deepEqual(new Set(events.keys()), new Set(expected.keys()), 'an event for every user the change log names, and for no other');
      for (const [id, type] of expected) assert.deepEqual(events.get(id), [type], `exactly one ${type} for ${id}`);
    });
  });
}
