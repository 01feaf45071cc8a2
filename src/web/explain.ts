/**
 * Turns identity-provider and Graph failures into words a customer admin can
 * act on. Codes come from Entra's AADSTS list; anything unknown still gets a
 * next step, never a raw stack or JSON.
 */
import { aadstsCodeOf } from '../identity/errors.ts';

export interface Explanation {
  title: string;
  message: string;
  /** What the person can do now. */
  next: string;
}

/** The digits of the AADSTS code in an error description; identity/ alone reads the code itself. */
export function aadstsCode(description: string | undefined): string | undefined {
  return aadstsCodeOf(description)?.slice('AADSTS'.length);
}

export function explainSignupError(error: string, description: string | undefined): Explanation {
  switch (aadstsCode(description)) {
    case '65004':
      return {
        title: 'Sign-up cancelled',
        message: 'The permissions Roster asked for were declined, so your organisation was not signed up.',
        next: 'When you are ready, start the sign-up again and choose Accept on the permissions page.',
      };
    case '90094':
    case '90099':
      return {
        title: 'An administrator needs to approve Roster',
        message: 'The account you used cannot grant permissions for your organisation. Only an administrator of your Microsoft Entra directory can sign it up.',
        next: 'Ask a Global Administrator (or Cloud Application Administrator) to sign up your organisation, or sign up again with an administrator account.',
      };
    case '50020':
      return {
        title: 'Signed in with an account from another directory',
        message: 'The account you signed in with does not belong to the organisation being signed up.',
        next: 'Sign out of Microsoft, then start the sign-up again with an administrator account of your own organisation.',
      };
    case '7000112':
      return {
        title: 'Roster is disabled in your directory',
        message: 'Your organisation has disabled the Roster application.',
        next: 'Ask your administrator to enable Roster under Enterprise applications, then try again.',
      };
    case '9001023':
      return {
        title: 'Sign-up could not start',
        message: 'The sign-up request went to an endpoint that cannot grant organisation-wide permissions.',
        next: 'Start the sign-up again from the Roster home page.',
      };
  }
  if (error === 'access_denied') {
    return {
      title: 'Sign-up not completed',
      message: 'Microsoft reported that permission was not granted.',
      next: 'Start the sign-up again with an administrator account and choose Accept.',
    };
  }
  return {
    title: 'Sign-up failed',
    message: `Microsoft reported a problem (${error}${aadstsCode(description) ? `, AADSTS${aadstsCode(description)}` : ''}).`,
    next: 'Try again in a few minutes. If it keeps happening, contact support and mention the code above.',
  };
}

export function explainSignInError(error: string, description: string | undefined): Explanation {
  switch (aadstsCode(description)) {
    case '65004':
      return {
        title: 'Sign-in cancelled',
        message: 'You declined the permissions Roster needs to sign you in.',
        next: 'Sign in again and choose Accept, or ask your administrator to grant consent for your organisation.',
      };
    case '90094':
    case '65001':
      return {
        title: 'Your organisation has not approved Roster',
        message: 'An administrator of your organisation must grant Roster its permissions before anyone can sign in.',
        next: 'Ask your administrator to sign your organisation up from the Roster home page.',
      };
    case '50020':
      return {
        title: 'This account cannot be used here',
        message: 'The account you chose is not a work account of an organisation Roster can serve.',
        next: 'Sign in with your work account.',
      };
    case '7000112':
      return {
        title: 'Roster is disabled in your directory',
        message: 'Your organisation has disabled the Roster application.',
        next: 'Ask your administrator to enable Roster under Enterprise applications.',
      };
    case '50105':
      return {
        title: 'You are not assigned to Roster',
        message: 'Your organisation only lets assigned people use Roster.',
        next: 'Ask your administrator to assign you to the Roster application.',
      };
    case '53003':
      return {
        title: 'Blocked by your organisation\'s access policy',
        message: 'A Conditional Access policy of your organisation blocked this sign-in.',
        next: 'Contact your IT department; they can see why the policy applied.',
      };
  }
  if (error === 'login_required' || error === 'interaction_required') {
    return { title: 'Please sign in', message: 'Microsoft needs you to sign in again.', next: 'Choose Sign in to continue.' };
  }
  return {
    title: 'Sign-in failed',
    message: `Microsoft reported a problem (${error}${aadstsCode(description) ? `, AADSTS${aadstsCode(description)}` : ''}).`,
    next: 'Try signing in again. If it keeps happening, contact your administrator and mention the code above.',
  };
}

export interface SyncProblem extends Explanation {
  /** The button that fixes it: consent again (reconnect or grant), or a new sync attempt. */
  fix: 'consent' | 'retry' | 'decide' | null;
}

/** The sync's health in words, with the fix; the raw error is shown only as a detail below it. */
export function explainSyncHealth(health: string, lastError: string | null): SyncProblem | null {
  switch (health) {
    case 'ok':
      return null;
    case 'disconnected':
      return {
        title: 'Roster is no longer connected to your organisation',
        message: 'Microsoft says Roster\'s access to your directory was removed (the app was deleted or its consent revoked). Syncing has stopped; the users Roster already had are kept.',
        next: 'An administrator of your Microsoft Entra directory can reconnect by granting consent again.',
        fix: 'consent',
      };
    case 'missing_permission':
      return {
        title: 'Roster may not read your users',
        message: 'Microsoft Graph refused to list your organisation\'s users: the User.Read.All application permission is not granted.',
        next: 'An administrator of your Microsoft Entra directory grants it by consenting again (or under Enterprise applications › Roster › Permissions › Grant admin consent).',
        fix: 'consent',
      };
    case 'held':
      return {
        title: 'A sync is waiting for your decision',
        message: `The last sync would remove a large share of your users, so Roster held it instead of applying it${lastError ? ` (${lastError})` : ''}.`,
        next: 'If those people really left your directory, confirm the removal. If not (for example a filter or permission changed in Entra), discard it: nothing is removed and the next full sync checks again.',
        fix: 'decide',
      };
    default:
      return {
        title: 'The last sync failed',
        message: 'Roster could not finish reading your directory. It tries again on its own schedule.',
        next: 'You can start a sync now. If it keeps failing, contact support and mention the error below.',
        fix: 'retry',
      };
  }
}

/**
 * The groups' sync health in words (rule 25): their own problem, beside the
 * users' and never instead of it, since users keep syncing without the group permission.
 */
export function explainGroupSyncHealth(health: string, lastError: string | null): SyncProblem | null {
  switch (health) {
    case 'ok':
      return null;
    case 'missing_permission':
      return {
        title: 'Groups: missing permission',
        message: 'Microsoft Graph refused to list your organisation\'s groups: the GroupMember.Read.All application permission is not granted (consent was probably given before Roster asked for it). Users keep syncing.',
        next: 'An administrator of your Microsoft Entra directory grants GroupMember.Read.All by consenting again (or under Enterprise applications › Roster › Permissions › Grant admin consent).',
        fix: 'consent',
      };
    case 'held':
      return {
        title: 'A group sync is waiting for a decision',
        message: `The last group sync would remove a large share of your groups and memberships, so Roster held it instead of applying it${lastError ? ` (${lastError})` : ''}. Users keep syncing.`,
        next: 'An operator confirms or discards the removal in the operator console.',
        fix: null,
      };
    case 'disconnected':
      return explainSyncHealth(health, lastError);
    default:
      return {
        title: 'The last group sync failed',
        message: 'Roster could not finish reading your groups. Users are not affected; the next sync tries again.',
        next: 'If it keeps failing, contact support and mention the error below.',
        fix: 'retry',
      };
  }
}
