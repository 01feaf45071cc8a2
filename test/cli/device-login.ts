import assert from 'node:assert/strict';
import { Browser } from '../helpers/browser.ts';
import type { TestEmulator } from '../helpers/emulator.ts';
import type { RosterProcess } from './spawn.ts';

/** Types the code the terminal printed on the emulator's device login page and signs in there, as a person would. */
export async function approveDeviceCode(emulator: TestEmulator, run: RosterProcess, username: string): Promise<string> {
  await run.waitFor(/enter the code [A-Z0-9]+/);
  const code = /enter the code ([A-Z0-9]+)/.exec(run.out())![1]!;
  const page = /open the page (\S+) and/.exec(run.out())![1]!;
  const browser = new Browser();
  const entry = await browser.get(page);
  assert.equal(entry.status, 200);
  assert.match(entry.html, /Enter code/);
  const wrong = await browser.post(page, { otc: 'NOTACODE1' });
  assert.equal(wrong.status, 400, 'a code the emulator never issued is refused');
  const signInPage = await browser.post(page, { otc: code.toLowerCase() });
  assert.match(signInPage.html, /name="password"/);
  const done = await browser.follow(await browser.submitForm(signInPage, { username, password: 'pw' }));
  return done.html;
}
