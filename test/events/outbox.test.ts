import assert from 'node:assert/strict';
import { before, beforeEach, describe, it } from 'node:test';
import { sql } from 'kysely';
import { GraphReader } from '../../src/directory/graph-reader.ts';
import { DirectorySync } from '../../src/directory/sync.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import { toEnvelope } from '../../src/events/types.ts';
import type { Store } from '../../src/store/database.ts';
import type { EventRow } from '../../src/store/events.ts';
import { JobsRepository } from '../../src/store/jobs.ts';
import { repositoriesOf, transaction } from '../../src/store/repositories.ts';
import { TenantLifecycle } from '../../src/tenants/lifecycle.ts';
import { TenantOnboarding } from '../../src/tenants/onboarding.ts';
import type { TestEmulator } from '../helpers/emulator.ts';
import type { EmulatorConnection } from '../helpers/entra.ts';
import { addSignedUpTenant, useSyncTestbed } from '../helpers/mirror.ts';
import { ENGINES, type TestStore } from '../helpers/stores.ts';

/**
 * Every insert into the outbox fails, in the database itself, until the
 * returned function is called: what an event that cannot be written does to its change.
 */
async function refuseEvents(store: Store): Promise<() => Promise<void>> {
  if (store.engine === 'postgres') {
    await sql`create function refuse_event() returns trigger language plpgsql as $$ begin raise exception 'the outbox refused the event'; end $$`.execute(store.db);
    await sql`create trigger refuse_event before insert on events for each statement execute function refuse_event()`.execute(store.db);
    return async () => {
      await sql`drop trigger refuse_event on events`.execute(store.db);
      await sql`drop function refuse_event()`.execute(store.db);
    };
  }
  await sql`create trigger refuse_event before insert on events begin select raise(abort, 'the outbox refused the event'); end`.execute(store.db);
  return async () => void (await sql`drop trigger refuse_event`.execute(store.db));
}

for (const engine of ENGINES) {
  describe(`event outbox (${engine})`, () => {
    let emulator: TestEmulator;
    let connection: EmulatorConnection;
    let db: TestStore;
    let tenant: Tenant;
    let sync: DirectorySync;

    const bed = useSyncTestbed(engine);
    before(() => ({ emulator, connection, db } = bed));

    function makeSync(store: Store = db.store, options: { maxAttempts?: number } = {}): DirectorySync {
      return new DirectorySync({
        store,
        entra: connection.app(),
        reader: new GraphReader({ http: connection.http, maxAttempts: options.maxAttempts ?? 4 }),
        graphBaseUrl: connection.graphBaseUrl,
        pageSize: 400,
        consentGraceMs: 0,
      });
    }

    async function eventsOf(tenantId: string, after = 0): Promise<EventRow[]> {
      return repositoriesOf(db.store).events.list({ after, tenantId, limit: 100_000 });
    }

    async function lastSequence(): Promise<number> {
      const [last] = await db.store.db.selectFrom('events').select('sequence').orderBy('sequence', 'desc').limit(1).execute();
      return Number(last?.sequence ?? 0);
    }

    beforeEach(async () => {
      tenant = await addSignedUpTenant(emulator, db.store, 1000, (i, domain) => ({ userPrincipalName: `u${i}@${domain}`, displayName: `User ${i}`, department: i % 2 ? 'R&D' : 'Sales' }));
      sync = makeSync();
    });

    it('sync rule 21: a full sync emits one user.created per user; a full resync and an empty delta round of the same directory emit nothing', async () => {
      assert.equal((await sync.run(tenant.id)).status, 'succeeded');
      const events = await eventsOf(tenant.id);
      assert.equal(events.length, 1000);
      assert.ok(events.every((e) => e.type === 'user.created'));
      assert.deepEqual(new Set(events.map((e) => (JSON.parse(e.data) as { id: string }).id)), new Set(tenant.users.map((u) => u.props.id)));
      const first = toEnvelope(events[0]!);
      assert.match(first.id, /^evt_[A-Za-z0-9_-]{20,}$/);
      assert.equal(first.tenant_id, tenant.id);
      assert.equal(first.previous_attributes, undefined);
      assert.ok(!Number.isNaN(Date.parse(first.created_at)));

      const mark = await lastSequence();
      assert.equal((await sync.run(tenant.id, { full: true })).status, 'succeeded');
      assert.equal((await sync.run(tenant.id)).status, 'succeeded');
      assert.deepEqual(await eventsOf(tenant.id, mark), [], 'replayed pages change nothing and emit nothing');
    });

    it('a delta round emits created, updated with the changed keys only, soft_deleted, restored and deleted, once each, in order', async () => {
      await sync.run(tenant.id);
      const mark = await lastSequence();
      const d = emulator.ctx.directory;
      const [edited, softened, restored, purged] = [tenant.users[1]!.props.id, tenant.users[2]!.props.id, tenant.users[3]!.props.id, tenant.users[4]!.props.id];
      d.softDeleteUser(tenant, restored);
      await sync.run(tenant.id);
      const beforeRound = await lastSequence();
      const added = d.addUser(tenant, { userPrincipalName: `new@${tenant.defaultDomain}`, displayName: 'New Person' }).props.id;
      d.editUser(tenant, edited, { department: 'Legal', jobTitle: 'Counsel' });
      d.softDeleteUser(tenant, softened);
      d.restoreUser(tenant, restored);
      d.purgeUser(tenant, purged);
      await sync.run(tenant.id);

      const soft = await eventsOf(tenant.id, mark);
      assert.deepEqual(soft.filter((e) => e.sequence <= beforeRound).map((e) => e.type), ['user.soft_deleted']);
      const round = (await eventsOf(tenant.id, beforeRound)).map(toEnvelope);
      const byUser = new Map(round.map((e) => [(e.data as { id: string }).id, e]));
      assert.equal(round.length, 5, round.map((e) => e.type).join());
      assert.equal(byUser.get(added)?.type, 'user.created');
      const update = byUser.get(edited)!;
      assert.equal(update.type, 'user.updated');
      assert.deepEqual(update.previous_attributes, { department: 'R&D', job_title: null });
      assert.equal((update.data as { department: string }).department, 'Legal');
      assert.equal(byUser.get(softened)?.type, 'user.soft_deleted');
      assert.equal((byUser.get(softened)?.data as { state: string }).state, 'soft_deleted');
      assert.equal(byUser.get(restored)?.type, 'user.restored');
      assert.equal(byUser.get(purged)?.type, 'user.deleted');
      assert.equal((byUser.get(purged)?.data as { user_principal_name: string }).user_principal_name, `u4@${tenant.defaultDomain}`, 'a deleted user is shown as it was');
      const sequences = round.map((e) => e.id);
      assert.equal(new Set(sequences).size, sequences.length);
    });

    it('a held deletion emits sync.held; confirming it emits user.deleted for each removed user and sync.recovered', async () => {
      await sync.run(tenant.id);
      const mark = await lastSequence();
      for (const user of tenant.users.slice(0, 400)) emulator.ctx.directory.purgeUser(tenant, user.props.id);
      assert.equal((await sync.run(tenant.id)).status, 'held');
      assert.deepEqual((await eventsOf(tenant.id, mark)).map((e) => e.type), ['sync.held']);
      const held = await lastSequence();
      assert.equal(await sync.confirmHeldDeletion(tenant.id), 400);
      const decided = await eventsOf(tenant.id, held);
      assert.equal(decided.filter((e) => e.type === 'user.deleted').length, 400);
      assert.deepEqual(decided.filter((e) => e.type !== 'user.deleted').map((e) => e.type), ['sync.recovered']);
      assert.equal(decided.at(-1)?.type, 'sync.recovered');
    });

    it('sync health events fire on a change of health only: two failed runs give one sync.failed, the next success sync.recovered', async () => {
      await sync.run(tenant.id);
      const mark = await lastSequence();
      const failing = makeSync(db.store, { maxAttempts: 1 });
      for (let i = 0; i < 2; i++) {
        emulator.ctx.faults.add({ target: 'graph', kind: 'unavailable', tenant: tenant.id, count: 1 });
        assert.equal((await failing.run(tenant.id)).status, 'failed');
      }
      assert.deepEqual((await eventsOf(tenant.id, mark)).map((e) => e.type), ['sync.failed']);
      const failed = toEnvelope((await eventsOf(tenant.id, mark))[0]!);
      assert.deepEqual({ ...(failed.data as object), error: null, run_id: null }, { tenant_id: tenant.id, health: 'failing', previous_health: 'ok', error: null, run_id: null, objects: 'users' });
      assert.equal((await sync.run(tenant.id)).status, 'succeeded');
      assert.deepEqual((await eventsOf(tenant.id, mark)).map((e) => e.type), ['sync.failed', 'sync.recovered']);
    });

    it('tenant lifecycle: each change emits its event with the tenant after it; a change that changes nothing emits nothing', async () => {
      const lifecycle = new TenantLifecycle(db.store);
      const mark = await lastSequence();
      assert.equal(await lifecycle.suspend(tenant.id, 'unpaid', 1), true);
      assert.equal(await lifecycle.suspend(tenant.id, 'unpaid', 2), false);
      assert.equal(await lifecycle.resume(tenant.id, 3), true);
      await lifecycle.disconnect(tenant.id, 'app removed', 4);
      await lifecycle.disconnect(tenant.id, 'app removed', 5);
      const events = (await eventsOf(tenant.id, mark)).map(toEnvelope);
      assert.deepEqual(events.map((e) => e.type), ['tenant.suspended', 'tenant.resumed', 'tenant.disconnected']);
      assert.deepEqual(events[0]!.data, { id: tenant.id, display_name: tenant.displayName, domains: tenant.domains, state: 'suspended', state_reason: 'unpaid' });

      // Consent confirmed again: a reconnect; after leaving Roster, a new sign-up.
      const onboarding = new TenantOnboarding({ store: db.store, entra: connection.app(), http: connection.http, graphBaseUrl: connection.graphBaseUrl });
      assert.equal((await onboarding.confirm(tenant.id, { signedUpByOid: null, signupContext: null })).kind, 'active');
      assert.equal((await onboarding.confirm(tenant.id, { signedUpByOid: null, signupContext: null })).kind, 'active');
      await lifecycle.offboard(tenant.id, 'left', 6);
      assert.equal((await onboarding.confirm(tenant.id, { signedUpByOid: null, signupContext: null })).kind, 'active');
      assert.deepEqual((await eventsOf(tenant.id, mark)).map((e) => e.type).slice(3), ['tenant.reconnected', 'tenant.offboarded', 'tenant.signed_up']);
    });

    it('an event is written in the same transaction as its change: when the event cannot be written, the change does not happen', async () => {
      const restore = await refuseEvents(db.store);
      try {
        await assert.rejects(new TenantLifecycle(db.store).suspend(tenant.id, 'unpaid', 1), /outbox refused/);
        assert.equal((await repositoriesOf(db.store).tenants.get(tenant.id))?.state, 'active', 'the suspension rolled back with its event');
        // The run fails, and so does the record of its failure (its sync.failed event is refused too).
        await assert.rejects(makeSync().run(tenant.id), /outbox refused/);
      } finally {
        await restore();
      }
      const users = await db.store.db.selectFrom('users').select('id').where('tenant_id', '=', tenant.id).execute();
      assert.equal(users.length, 0, 'no page committed without its events');
      assert.deepEqual(await eventsOf(tenant.id), []);
    });

    it('EVENTS_ENABLED=false: changes commit and the outbox stays empty', async () => {
      const off: Store = { ...db.store, eventsEnabled: false };
      assert.equal((await makeSync(off).run(tenant.id)).status, 'succeeded');
      await new TenantLifecycle(off).suspend(tenant.id, 'x', 1);
      assert.deepEqual(await eventsOf(tenant.id), []);
    });

    it('each event keeps the data and previous attributes exactly as written, in order, whatever text they hold', async () => {
      const mark = await lastSequence();
      const awkward = ['"quoted", {braced}, [bracketed]', 'back\\slash\\', 'NULL', '', 'Zoë — 日本 😀', 'tab\tnew\nline\u0000', '\u2028', "it's"];
      const drafts = Array.from({ length: 1500 }, (_, i) => ({
        type: 'user.updated',
        tenantId: i % 3 ? tenant.id : null,
        data: { id: `u${i}`, name: awkward[i % awkward.length], nested: { list: [i, null, true, awkward[(i + 1) % awkward.length]] }, empty: {} },
        previousAttributes: i % 2 ? { name: awkward[(i + 2) % awkward.length] } : null,
      }));
      await repositoriesOf(db.store).events.append(drafts, Date.now());
      const rows = await db.store.db.selectFrom('events').select(['type', 'tenant_id', 'data', 'previous_attributes']).where('sequence', '>', mark).orderBy('sequence').execute();
      assert.deepEqual(
        rows.map((row) => ({ ...row })),
        drafts.map((draft) => ({ type: draft.type, tenant_id: draft.tenantId, data: JSON.stringify(draft.data), previous_attributes: draft.previousAttributes ? JSON.stringify(draft.previousAttributes) : null })),
      );
    });

    // PostgreSQL only: SQLite has one writer at a time.
    if (engine === 'postgres') it('appenders take turns: an append that began later waits for the open one to commit, so sequence numbers follow commit order and a cursor never passes an event still to commit', async () => {
      const mark = await lastSequence();
      const draft = (name: string) => ({ type: 'user.updated', tenantId: tenant.id, data: { id: name }, previousAttributes: { department: 'x' } });
      let releaseFirst!: () => void;
      const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
      let firstAppended!: () => void;
      const firstInFlight = new Promise<void>((resolve) => (firstAppended = resolve));
      const first = transaction(db.store, async (repos) => {
        await repos.events.append([draft('first')], Date.now());
        firstAppended();
        await firstHeld;
      });
      await firstInFlight;
      let secondCommitted = false;
      // The later append is the first statement of its transaction: the turn must come before its number.
      const second = transaction(db.store, async (repos) => repos.events.append([draft('second'), draft('third')], Date.now())).then(() => (secondCommitted = true));
      try {
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(secondCommitted, false, 'the later append waits for the open one');
        assert.deepEqual(await eventsOf(tenant.id, mark), [], 'a reader sees neither yet');
      } finally {
        releaseFirst();
        await Promise.all([first, second]);
      }
      const events = await eventsOf(tenant.id, mark);
      assert.deepEqual(events.map((e) => (JSON.parse(e.data) as { id: string }).id), ['first', 'second', 'third']);
      assert.ok(events[0]!.sequence < events[1]!.sequence && events[1]!.sequence < events[2]!.sequence);
    });

    it('each event gets one delivery per enabled endpoint that wants it, with an id of the same form as the events\'', async () => {
      const other = '00000000-0000-4000-8000-000000000001';
      const now = Date.now();
      const webhooks = repositoriesOf(db.store).webhooks;
      const endpoint = (id: string, eventTypes: string[], tenantId: string | null) => webhooks.createEndpoint({ id, url: 'https://hooks.example.com/x', description: null, eventTypes, tenantId, secret: 'whsec_x', now });
      await endpoint('we_all', [], null);
      await endpoint('we_created', ['user.created'], null);
      await endpoint('we_tenant', [], tenant.id);
      await endpoint('we_other', [], other);
      await endpoint('we_off', [], null);
      await webhooks.setEnabled('we_off', false, null, now);
      try {
        const mark = await lastSequence();
        const before = Date.now();
        const drafts = Array.from({ length: 2500 }, (_, i) => ({ type: i % 2 ? 'user.created' : 'user.updated', tenantId: i % 5 ? tenant.id : null, data: { id: `u${i}` } }));
        await repositoriesOf(db.store).events.append(drafts, now);
        const after = Date.now();
        const deliveries = await db.store.db.selectFrom('webhook_deliveries as d').innerJoin('events as e', 'e.sequence', 'd.event_sequence').select(['d.id', 'd.endpoint_id', 'd.status', 'd.attempts', 'd.next_attempt_at', 'e.type', 'e.tenant_id']).where('e.sequence', '>', mark).execute();
        const count = (endpointId: string) => deliveries.filter((d) => d.endpoint_id === endpointId).length;
        assert.equal(count('we_all'), 2500);
        assert.equal(count('we_created'), 1250);
        assert.equal(count('we_tenant'), 2000);
        assert.equal(count('we_other'), 0);
        assert.equal(count('we_off'), 0);
        assert.ok(deliveries.every((d) => d.status === 'pending' && Number(d.attempts) === 0 && Number(d.next_attempt_at) === now));
        assert.ok(deliveries.filter((d) => d.endpoint_id === 'we_created').every((d) => d.type === 'user.created'));
        assert.equal(new Set(deliveries.map((d) => d.id)).size, deliveries.length);
        for (const { id } of deliveries) {
          assert.match(id, /^msg_[A-Za-z0-9_-]{22}$/);
          const made = Buffer.from(id.slice('msg_'.length), 'base64url').readUIntBE(0, 6);
          assert.ok(made >= Math.min(before, now) && made <= after, `${id} was made at ${made}`);
        }
      } finally {
        await db.store.db.deleteFrom('webhook_endpoints').where('id', 'in', ['we_all', 'we_created', 'we_tenant', 'we_other', 'we_off']).execute();
      }
    });

    it('the outbox keeps the indexes its readers use: the sequence, and a tenant\'s feed (PostgreSQL has none on the id)', async () => {
      const indexes =
        engine === 'postgres'
          ? (await sql<{ name: string }>`select indexname as name from pg_indexes where tablename = 'events'`.execute(db.store.db)).rows
          : (await sql<{ name: string }>`select name from pragma_index_list('events')`.execute(db.store.db)).rows;
      assert.deepEqual(indexes.map((row) => row.name).sort(), engine === 'postgres' ? ['events_by_tenant', 'events_pkey'] : ['events_by_tenant', 'sqlite_autoindex_events_1']);
    });

    it('the feed: after a cursor, filtered by types and tenant, limited, in sequence order', async () => {
      const mark = await lastSequence();
      const other = await addSignedUpTenant(emulator, db.store, 10, (i, domain) => ({ userPrincipalName: `o${i}@${domain}`, displayName: `Other ${i}` }));
      await sync.run(tenant.id);
      await makeSync().run(other.id);
      await new TenantLifecycle(db.store).suspend(other.id, 'x', Date.now());
      const events = repositoriesOf(db.store).events;
      const all = await events.list({ after: mark, limit: 5000 });
      assert.deepEqual(all.map((e) => e.sequence), [...all.map((e) => e.sequence)].sort((a, b) => a - b));
      const page = await events.list({ after: all[10]!.sequence, limit: 7 });
      assert.deepEqual(page.map((e) => e.id), all.slice(11, 18).map((e) => e.id));
      const others = await events.list({ after: 0, tenantId: other.id, limit: 5000 });
      assert.equal(others.length, 11);
      assert.deepEqual(await events.list({ after: mark, types: ['tenant.suspended'], limit: 10 }).then((rows) => rows.map((r) => r.tenant_id)), [other.id]);
      assert.equal((await events.list({ after: 0, types: ['user.created', 'tenant.suspended'], tenantId: other.id, limit: 5000 })).length, 11);
    });

    it('retention: events older than the retention are pruned in batches, the rest stay', async () => {
      await sync.run(tenant.id);
      const day = 86_400_000;
      const jobs = new JobsRepository(db.store, { sessionIdleMs: 60_000, eventRetentionMs: 30 * day });
      const inFeed = (await eventsOf(tenant.id)).length;
      assert.equal(await jobs.pruneEvents(Date.now() + 29 * day), 0);
      const kept = (await db.store.db.selectFrom('events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n;
      const pruned = await jobs.pruneEvents(Date.now() + 31 * day);
      assert.equal(pruned, Number(kept));
      assert.ok(inFeed >= 1000);
      assert.deepEqual(await eventsOf(tenant.id), []);
    });
  });
}
