import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TenantRepository } from '../../src/store/tenants.ts';
import { TenantOnboarding } from '../../src/tenants/onboarding.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { connectToEmulator, type EmulatorConnection } from '../helpers/entra.ts';
import { addOrg, consent, demoApp, type Org } from '../helpers/fixtures.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

for (const engine of ENGINES) {
  describe(`tenant onboarding (${engine})`, () => {
    let emulator: TestEmulator;
    let connection: EmulatorConnection;
    let db: TestStore;
    let onboarding: TenantOnboarding;
    let tenants: TenantRepository;
    let contoso: Org;
    let fabrikam: Org;

    before(async () => {
      emulator = await startTestEmulator();
      connection = await connectToEmulator(emulator);
      db = await openTestStore(engine);
      tenants = new TenantRepository(db.store.db);
      onboarding = new TenantOnboarding({ store: db.store, entra: connection.app(), http: connection.http, graphBaseUrl: connection.graphBaseUrl });
      contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
      fabrikam = addOrg(emulator.ctx, 'Fabrikam', 'fabrikam.com');
    });

    after(async () => {
      await db.drop();
      await connection.close();
      await emulator.close();
    });

    it('rule 11: a tenant that never consented is not registered, whatever the callback claimed', async () => {
      const outcome = await onboarding.confirm(fabrikam.tenant.id, { signedUpByOid: null, signupContext: null });
      assert.notEqual(outcome.kind, 'active');
      assert.notEqual((await tenants.get(fabrikam.tenant.id))?.state, 'active');
    });

    it('rule 11: a consented tenant is confirmed through its own app token and GET /organization', async () => {
      consent(emulator.ctx, contoso);
      const outcome = await onboarding.confirm(contoso.tenant.id.toUpperCase(), { signedUpByOid: contoso.admin.props.id, signupContext: { plan: 'team' } });
      assert.equal(outcome.kind, 'active');
      const stored = (await tenants.get(contoso.tenant.id))!;
      assert.equal(stored.state, 'active');
      assert.equal(stored.displayName, 'Contoso');
      assert.deepEqual(stored.domains.sort(), ['contoso.com', 'contoso.onmicrosoft.com']);
      assert.deepEqual(stored.signupContext, { plan: 'team' });
      const graphCalls = emulator.ctx.requestLog.entries({ tenant: contoso.tenant.id, route: 'GET /v1.0/organization' });
      assert.equal(graphCalls.length, 1);
    });

    it('rule 13: confirming the same tenant again is idempotent', async () => {
      const again = await onboarding.confirm(contoso.tenant.id, { signedUpByOid: contoso.admin.props.id, signupContext: { plan: 'team' } });
      assert.equal(again.kind, 'active');
      assert.equal((await tenants.list()).filter((t) => t.id === contoso.tenant.id).length, 1);
    });

    it('consent still propagating: pending, then active once tokens carry it', async () => {
      emulator.ctx.directory.consentPropagationSeconds = 60;
      emulator.ctx.directory.grantAdminConsent(fabrikam.tenant, demoApp(emulator.ctx));
      const early = await onboarding.confirm(fabrikam.tenant.id, { signedUpByOid: null, signupContext: null });
      assert.equal(early.kind, 'propagating');
      assert.match((early as { detail: string }).detail, /AADSTS65001/);
      assert.equal((await tenants.get(fabrikam.tenant.id))?.state, 'pending');
      emulator.ctx.clock.advance(61);
      const later = await onboarding.confirm(fabrikam.tenant.id, { signedUpByOid: null, signupContext: null });
      assert.equal(later.kind, 'active');
      emulator.ctx.directory.consentPropagationSeconds = 0;
    });

    it('a suspended tenant stays suspended, with its record unchanged, when its consent is confirmed again', async () => {
      await tenants.setState(contoso.tenant.id, 'suspended', 'by an operator', 5);
      const before = (await tenants.get(contoso.tenant.id))!;
      const outcome = await onboarding.confirm(contoso.tenant.id, { signedUpByOid: 'someone-else', signupContext: { plan: 'business' } });
      assert.equal(outcome.kind, 'suspended');
      assert.deepEqual(await tenants.get(contoso.tenant.id), before);
      await tenants.setState(contoso.tenant.id, 'active', null, 6);
    });

    it('the first signer stays recorded when another admin signs the tenant up again', async () => {
      await onboarding.confirm(contoso.tenant.id, { signedUpByOid: 'another-admin', signupContext: { plan: 'business' } });
      const stored = (await tenants.get(contoso.tenant.id))!;
      assert.equal(stored.signedUpByOid, contoso.admin.props.id);
      assert.deepEqual(stored.signupContext, { plan: 'business' });
    });

    it('a pending row left by an earlier attempt starts afresh at the next one', async () => {
      const northwind = addOrg(emulator.ctx, 'Northwind', 'northwind.com');
      await tenants.markPending(northwind.tenant.id, 1_000);
      await tenants.markPending(northwind.tenant.id, 90_000_000);
      const stored = (await tenants.get(northwind.tenant.id))!;
      assert.equal(stored.state, 'pending');
      assert.equal(stored.createdAt, 90_000_000);
      assert.equal(stored.updatedAt, 90_000_000);
      await tenants.markPending(contoso.tenant.id, 90_000_000);
      assert.equal((await tenants.get(contoso.tenant.id))!.state, 'active', 'never downgrades a known tenant');
    });
  });
}
