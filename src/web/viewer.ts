import type { OperatorIdentity } from '../config/config.ts';
import type { Viewer, PageServices } from './context.ts';

export interface ViewerSource {
  /**
   * The person behind a session id, re-checked against Roster's records: a
   * tenant that left or was disconnected, or a user removed or disabled by a
   * sync, or someone the tenant's access list no longer lets in, no longer
   * has a session (and its row is deleted). `touch: false`
   * checks without counting as activity (the live sync stream re-checks with it).
   */
  resume(sessionId: string, options?: { touch?: boolean }): Promise<Viewer | null>;
}

export function viewerSource(services: Pick<PageServices, 'sessions' | 'groupRoles'>, operators: readonly OperatorIdentity[], now: () => number): ViewerSource {
  return {
    async resume(sessionId, options = {}) {
      const signedIn = await services.sessions.resumeSignedIn(sessionId, now(), options);
      if (!signedIn) return null;
      const { session, tenant, user } = signedIn;
      // Someone the tenant's access list no longer lets in is treated like a disabled user.
      const refused = !tenant || tenant.state !== 'active' || !user || user.deleted || !user.accountEnabled || !(await services.groupRoles.admits(tenant, user.id, signedIn.tenantHasAccessList));
      if (refused) {
        await services.sessions.destroy(sessionId);
        return null;
      }
      return {
        sessionId,
        tenant,
        user,
        name: user.displayName ?? user.userPrincipalName ?? 'you',
        tenantName: tenant.displayName,
        csrfToken: session.csrfToken,
        loginHint: session.loginHint,
        isAdmin: user.rosterRole === 'admin',
        isOperator: operators.some((o) => o.tenantId === tenant.id && o.objectId === user.id),
        directoryRoles: session.directoryRoles,
      };
    },
  };
}
