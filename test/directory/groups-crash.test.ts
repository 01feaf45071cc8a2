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
import { expectedGroupEvents, groupEventKeys, lastEventSequence, snapshotGroups } from '../helpers/group-events.ts';
import { assertGroupsMirror } from '../helpers/group-mirror.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url));
const USERS = 3000;
const KILLS = 6;

/** Rule 22 the hard way: `roster sync` killed with SIGKILL during its group round, restarted each time, then compared with the directory exactly, and each group event written once. */
for (const engine of ENGINES) {
  describe(`a group round killed at any instant loses and duplicates nothing (${engine})`, () => {
    let emulator: TestEmulator;
    let db: TestStore;
    let tenant: Tenant;
    let dir: string;
    let env: NodeJS.ProcessEnv;
    const random = seededRandom(engine === 'sqlite' ? 5 : 13);

    before(async () => {
      emulator = await startTestEmulator();
      db = await openTestStore(engine);
      dir = await mkdtemp(join(tmpdir(), 'roster-groups-crash-'));
      const caFile = join(dir, 'ca.pem');
      await writeFile(caFile, emulator.caCertPem);
      const d = emulator.ctx.directory;
      tenant = d.addTenant({ displayName: 'Groupco', domains: ['groupco.onmicrosoft.com', 'groupco.com'] });
      d.addUsersUnchecked(tenant, Array.from({ length: USERS }, (_, i) => ({ userPrincipalName: `u${i}@groupco.com`, displayName: `User ${i}` })));
      const ids = tenant.users.map((u) => u.props.id);
      // A large group in 25 slices, 150 teams, and nesting three deep.
      d.addGroup(tenant, { displayName: 'Everyone', securityEnabled: true, members: ids.slice(0, 2500) });
      let below: string | null = null;
      for (let i = 0; i < 150; i++) {
        const members = ids.slice(i * 20, i * 20 + 20);
        const group = d.addGroup(tenant, { displayName: `Team ${i}`, securityEnabled: true, members: i % 50 && below ? [below, ...members] : members });
        below = group.props.id;
      }
      d.grantAdminConsent(tenant, demoApp(emulator.ctx));
      await new TenantRepository(db.store.db).activate({ id: tenant.id, displayName: 'Groupco', domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
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

    /** Runs `roster sync`; with `kill`, SIGKILLs it a random few milliseconds after its `afterPages`-th page of groups. */
    function runSync(kill?: { afterPages: number; delayMs: number }): Promise<{ code: number | null; signal: string | null; stderr: string }> {
      const child = spawn(process.execPath, [BIN, 'sync', '--tenant', tenant.id], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      let pages = 0;
      let timer: NodeJS.Timeout | undefined;
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        pages += chunk.match(/ groups \w+ sync, page \d+,/g)?.length ?? 0;
        if (kill && !timer && pages >= kill.afterPages) timer = setTimeout(() => child.kill('SIGKILL'), kill.delayMs);
      });
      return new Promise((resolve) =>
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          resolve({ code, signal, stderr });
        }),
      );
    }

    async function killRepeatedly(maxPages: number): Promise<number> {
      let midRound = 0;
      for (let i = 0; i < KILLS; i++) {
        const result = await runSync({ afterPages: 1 + Math.floor(random() * maxPages), delayMs: Math.floor(random() * 40) });
        if (result.signal !== 'SIGKILL') assert.equal(result.code, 0, result.stderr);
        const state = await db.store.db.selectFrom('group_sync_state').select('next_link').where('tenant_id', '=', tenant.id).executeTakeFirst();
        if (result.signal === 'SIGKILL' && state?.next_link) midRound += 1;
      }
      const final = await runSync();
      assert.equal(final.code, 0, final.stderr);
      return midRound;
    }

    it(`rule 22: a full group listing over many pages, killed ${KILLS} times, then equal to the directory, with each group and membership event once`, async () => {
      const midRound = await killRepeatedly(3);
      assert.ok(midRound >= 3, `only ${midRound} runs were killed in the middle of the group listing`);
      await assertGroupsMirror(db.store, tenant);
      const events = await groupEventKeys(db.store, tenant.id, 0);
      assert.deepEqual(events.sort(), expectedGroupEvents({ groups: new Map(), memberships: new Set() }, snapshotGroups(tenant)));
    });

    it(`rule 22: a delta round of membership changes, killed ${KILLS} times, then equal to the directory, with each event once`, async () => {
      const d = emulator.ctx.directory;
      const before = snapshotGroups(tenant);
      const mark = await lastEventSequence(db.store);
      const everyone = tenant.groups.find((g) => g.props.displayName === 'Everyone')!.props.id;
      for (let i = 0; i < 600; i++) d.removeGroupMember(tenant, everyone, tenant.users[i * 4]!.props.id);
      for (let i = 0; i < 300; i++) d.addGroupMember(tenant, everyone, tenant.users[2500 + i]!.props.id);
      for (let i = 0; i < 40; i++) d.editGroup(tenant, tenant.groups[i + 1]!.props.id, { description: `Changed ${i}` });
      for (let i = 0; i < 10; i++) d.purgeGroup(tenant, tenant.groups[100]!.props.id);
      const midRound = await killRepeatedly(2);
      assert.ok(midRound >= 1, `only ${midRound} runs were killed in the middle of the delta round`);
      await assertGroupsMirror(db.store, tenant);
      const events = await groupEventKeys(db.store, tenant.id, mark);
      assert.deepEqual(events.sort(), expectedGroupEvents(before, snapshotGroups(tenant)), 'each change of the round emitted once');
    });
  });
}
