import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../../context.ts';
import { GraphError } from '../../errors.ts';
import type { GraphAuthenticator } from '../../graph-auth.ts';
import type { Tenant } from '../../model.ts';
import { authenticate, sendJson } from './http.ts';

/** `/organization`, and Graph's answer for every other path the emulator does not serve. */
export function registerOrganizationRoutes(app: FastifyInstance, ctx: EmulatorContext, auth: GraphAuthenticator): void {
  // Any valid token of the tenant may read it (real Graph wants Organization.Read.All or User.Read).
  app.get('/v1.0/organization', async (request, reply) => {
    const caller = await authenticate(auth, request);
    return sendJson(reply, JSON.stringify({ '@odata.context': `${ctx.urls.graph}/v1.0/$metadata#organization`, value: [organizationOf(caller.tenant)] }));
  });

  // Anything else under /v1.0 is outside what the emulator serves; Graph answers unknown segments this way.
  app.get('/v1.0/*', async (request) => {
    await authenticate(auth, request);
    const raw = request.url.split('?')[0]!.split('/')[2] ?? '';
    let segment = raw;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      // keep it encoded
    }
    throw new GraphError(400, 'BadRequest', `Resource not found for the segment '${segment}'.`);
  });
}

function organizationOf(t: Tenant): Record<string, unknown> {
  return {
    id: t.id,
    displayName: t.displayName,
    verifiedDomains: t.domains.map((name, i) => ({
      capabilities: 'Email, OfficeCommunicationsOnline',
      isDefault: name === t.defaultDomain,
      isInitial: i === 0,
      name,
      type: 'Managed',
    })),
    tenantType: 'AAD',
    countryLetterCode: t.countryLetterCode,
    createdDateTime: t.createdDateTime,
  };
}
