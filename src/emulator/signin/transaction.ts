import type { SignedInUser } from '../grants.ts';
import { randomToken, type PathTenant } from '../identity.ts';

export type ResponseMode = 'query' | 'fragment' | 'form_post';

/** Where (and how) answers for the app go: its redirect URI, in its response mode, with its `state`. */
export interface AppReturn {
  redirectUri: string;
  responseMode: ResponseMode;
  state: string | undefined;
}

/** Which page the sign-in is on; a posted step must match it. */
export type SignInStage = 'login' | 'pick' | 'consent' | 'approval';

/** A sign-in in progress: the validated request, kept server-side under a random id. */
export interface SignInTransaction extends AppReturn {
  id: string;
  kind: 'authorize' | 'adminconsent';
  path: PathTenant;
  /** Where the pages post their forms. */
  action: string;
  appId: string;
  scopes: string[];
  /** The raw `scope` parameter (admin consent echoes what it granted). */
  scopeParam: string;
  nonce: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string | undefined;
  prompt: string | undefined;
  loginHint: string | undefined;
  expiresAtMs: number;
  /** Set once the person has authenticated. */
  user?: SignedInUser;
  stage: SignInStage;
}

export type NewSignIn = Omit<SignInTransaction, 'id' | 'expiresAtMs' | 'stage' | 'user'>;

const TRANSACTION_LIFETIME_MS = 30 * 60_000;

/** Sign-ins waiting for the person at the browser, by transaction id. */
export class SignInTransactions {
  readonly #pending = new Map<string, SignInTransaction>();

  start(init: NewSignIn): SignInTransaction {
    const now = Date.now();
    for (const [id, t] of this.#pending) if (t.expiresAtMs <= now) this.#pending.delete(id);
    const txn: SignInTransaction = { ...init, id: randomToken(24), expiresAtMs: now + TRANSACTION_LIFETIME_MS, stage: 'login' };
    this.#pending.set(txn.id, txn);
    return txn;
  }

  /** The pending sign-in a posted form names, unless it expired. */
  find(id: string | undefined): SignInTransaction | undefined {
    const txn = id ? this.#pending.get(id) : undefined;
    return txn && txn.expiresAtMs > Date.now() ? txn : undefined;
  }

  finish(txn: SignInTransaction): void {
    this.#pending.delete(txn.id);
  }
}
