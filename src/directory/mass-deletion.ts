/** The share of a tenant's users a round may remove without a person's confirmation (rule 9). */
export const DEFAULT_MASS_DELETION_SHARE = 0.3;

export interface RemovalDecision {
  hold: boolean;
  /** Why the round is held, in words for admins and operators. */
  reason: string | null;
}

/**
 * A round that would remove more than `share` of the tenant's users is held
 * for confirmation: an empty or truncated listing must never empty the copy.
 */
export function decideRemovals(round: { kind: 'full' | 'delta'; removing: number; total: number; share: number; noun?: string }): RemovalDecision {
  const { kind, removing, total, share } = round;
  if (!(share >= 0 && share <= 1)) throw new RangeError(`the mass-deletion share must be between 0 and 1, not ${share}`);
  if (removing === 0 || removing <= share * total) return { hold: false, reason: null };
  const what = kind === 'full' ? 'full listing' : 'delta round';
  const count = (n: number) => n.toLocaleString('en-GB');
  return {
    hold: true,
    reason: `the ${what} would remove ${count(removing)} of ${count(total)} ${round.noun ?? 'users'} (more than ${Math.round(share * 100)}%); held for confirmation`,
  };
}
