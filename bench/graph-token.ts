import { accessTokenIssuerFor, GRAPH_AUDIENCE, type EmulatorContext } from '../src/emulator/context.ts';

/** An app-only Graph token for a tenant of the emulator, signed with its current key, valid for an hour. */
export function benchAppToken(ctx: EmulatorContext, tenantId: string, roles: string[]): Promise<string> {
  const now = ctx.clock.nowSeconds();
  return ctx.keyring.sign({
    aud: GRAPH_AUDIENCE,
    iss: accessTokenIssuerFor(tenantId),
    iat: now,
    nbf: now,
    exp: now + 3600,
    tid: tenantId,
    oid: crypto.randomUUID(),
    appid: ctx.demoAppId,
    idtyp: 'app',
    roles,
  });
}
