import assert from 'node:assert/strict';
import type { Org } from '../helpers/fixtures.ts';
import { decodeHtml, type Browser, type Hop } from '../helpers/browser.ts';
import type { TestRoster } from '../helpers/roster.ts';

/** A Roster and its identity provider as the flows need them: a test Roster, or a demo process (whose accounts share `password`). */
export type Site = Pick<TestRoster, 'url'> & { emulator: { urls: { pages: string } }; password?: string };

/** Answers whatever emulator page comes up (sign-in, account picker, consent) until it leaves the emulator. */
export async function passIdentityProvider(browser: Browser, roster: Site, start: Hop, username: string, decision: 'accept' | 'cancel' | 'return' = 'accept'): Promise<Hop> {
  const pagesOrigin = new URL(roster.emulator.urls.pages).origin;
  let hop = await browser.follow(start, (url) => !url.startsWith(pagesOrigin));
  for (let i = 0; i < 6 && new URL(hop.url).origin === pagesOrigin && !hop.location; i++) {
    if (hop.html.includes('name="password"')) {
      hop = await browser.submitForm(hop, { username, password: roster.password ?? 'pw' });
    } else if (hop.html.includes('name="account"')) {
      const account = decodeHtml(/name="account" value="([^"]+)"/.exec(hop.html)![1]!);
      hop = await browser.submitForm(hop, {}, { buttonValue: { account } });
    } else if (hop.html.includes('name="decision"')) {
      hop = await browser.submitForm(hop, {}, { buttonValue: { decision } });
    } else {
      throw new Error(`unexpected emulator page ${hop.status} ${hop.url}:\n${hop.html.slice(0, 800)}`);
    }
    hop = await browser.follow(hop, (url) => !url.startsWith(pagesOrigin));
  }
  assert.ok(hop.location, `expected a redirect back to Roster, got ${hop.status} at ${hop.url}`);
  return hop;
}

/**
 * The sign-up's first step: the home page's button, the sign-in at the identity
 * provider, and Roster's answer to it (a redirect to admin consent for the
 * signer's tenant, or a refusal page).
 */
export async function startSignUp(browser: Browser, roster: Site, username: string): Promise<Hop> {
  const start = await browser.post(`${roster.url}/signup`, { plan: 'team' });
  assert.equal(start.status, 303);
  const back = await passIdentityProvider(browser, roster, start, username);
  return browser.get(new URL(back.location!, back.url).href);
}

/** Signs an organisation up through the home page's button (sign in, then admin consent); returns the page Roster shows at the end. */
export async function signUp(browser: Browser, roster: Site, org: Org, decision: 'accept' | 'cancel' | 'return' = 'accept', username = org.admin.props.userPrincipalName): Promise<Hop> {
  const signedIn = await startSignUp(browser, roster, username);
  if (signedIn.status !== 303) return signedIn;
  const back = await passIdentityProvider(browser, roster, signedIn, username, decision);
  return browser.get(new URL(back.location!, back.url).href);
}

/** The consent redirect Roster sent a signed-in admin to, as `{ url, state }`. */
export function consentRequestOf(hop: Hop): { url: URL; state: string } {
  assert.equal(hop.status, 303, `expected the redirect to admin consent, got ${hop.status}: ${hop.html.slice(0, 300)}`);
  const url = new URL(hop.location!);
  assert.match(url.pathname, /\/v2\.0\/adminconsent$/);
  return { url, state: url.searchParams.get('state')! };
}

/** Signs a user in from `/signin` (or `path`) and returns Roster's final page. */
export async function signIn(browser: Browser, roster: Site, username: string, path = '/signin'): Promise<{ callback: Hop; final: Hop }> {
  const start = await browser.get(`${roster.url}${path}`);
  const back = await passIdentityProvider(browser, roster, start, username);
  const callback = await browser.get(new URL(back.location!, back.url).href);
  const final = callback.location ? await browser.get(new URL(callback.location, callback.url).href) : callback;
  return { callback, final };
}

export function sessionCookieName(): string {
  return 'roster_session';
}
