import { randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { accessTokenIssuerFor, GRAPH_AUDIENCE, type EmulatorContext } from '../../src/emulator/context.ts';

export interface TokenOptions {
  /** Lifetime from now on the emulator clock (default one hour; negative for an expired token). */
  expiresInSeconds?: number;
  /** Claims to add or override (e.g. a wrong `aud`). */
  claims?: JWTPayload;
}

function times(ctx: EmulatorContext, expiresInSeconds: number): { iat: number; nbf: number; exp: number } {
  const now = ctx.clock.nowSeconds();
  const iat = Math.min(now, now + expiresInSeconds - 60);
  return { iat, nbf: iat, exp: now + expiresInSeconds };
}

/** An app-only Graph token shaped like Entra's v1 access tokens (client credentials). */
export async function appToken(
  ctx: EmulatorContext,
  tenantId: string,
  options: TokenOptions & { roles?: string[]; appId?: string } = {},
): Promise<string> {
  const spId = randomUUID();
  const payload: JWTPayload = {
    aud: GRAPH_AUDIENCE,
    iss: accessTokenIssuerFor(tenantId),
    ...times(ctx, options.expiresInSeconds ?? 3600),
    tid: tenantId,
    oid: spId,
    sub: spId,
    appid: options.appId ?? ctx.demoAppId,
    appidacr: '1',
    idtyp: 'app',
    ver: '1.0',
    ...(options.roles === undefined ? { roles: ['User.Read.All'] } : options.roles.length > 0 ? { roles: options.roles } : {}),
    ...options.claims,
  };
  return ctx.keyring.sign(payload);
}

/** A delegated Graph token for a signed-in user. */
export async function userToken(
  ctx: EmulatorContext,
  tenantId: string,
  userId: string,
  scp = 'User.Read openid profile email',
  options: TokenOptions = {},
): Promise<string> {
  const payload: JWTPayload = {
    aud: GRAPH_AUDIENCE,
    iss: accessTokenIssuerFor(tenantId),
    ...times(ctx, options.expiresInSeconds ?? 3600),
    tid: tenantId,
    oid: userId,
    sub: randomUUID(),
    appid: ctx.demoAppId,
    appidacr: '1',
    idtyp: 'user',
    scp,
    ver: '1.0',
    ...options.claims,
  };
  return ctx.keyring.sign(payload);
}
