/**
 * Directory roles that may grant Microsoft Graph application permissions
 * tenant-wide (role template ids, as the `wids` claim lists them): Global
 * Administrator and Privileged Role Administrator.
 */
export const CONSENTING_ADMIN_ROLE_IDS: readonly string[] = ['62e90394-69f5-4237-9190-012177145e10', 'e8611ab8-c189-46e8-94e1-60213ab1f814'];

/** Whether a sign-in's directory roles make the person able to sign their organisation up. */
export function isConsentingAdmin(directoryRoles: readonly string[]): boolean {
  return directoryRoles.some((id) => CONSENTING_ADMIN_ROLE_IDS.includes(id.toLowerCase()));
}
