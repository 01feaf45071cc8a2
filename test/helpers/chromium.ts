import { existsSync } from 'node:fs';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = new URL('../../docs/screenshots/', import.meta.url);

/** Debian's Chromium, headless, with everything that would reach the internet switched off. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is required for browser tests and was not found at ${CHROMIUM} (apt-get install chromium).`);
  try {
    return await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
    });
  } catch (err) {
    throw new Error(`could not launch Chromium at ${CHROMIUM}: ${(err as Error).message}`);
  }
}

/** Fills the emulator's sign-in form once the browser has reached the emulator's pages at `pagesUrl`. */
export async function signInAtEmulator(page: Page, pagesUrl: string, username: string, password = 'pw'): Promise<void> {
  await page.waitForURL((url) => url.href.startsWith(pagesUrl));
  await page.getByLabel(/email|username|account/i).first().fill(username);
  await page.locator('input[type="password"]').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/**
 * Answers the emulator's account pickers and consent pages as `account` until
 * `arrived` shows: a sign-up passes a sign-in (which may ask for consent to
 * sign-in permissions) and then admin consent. Each answered page is waited
 * out before the next is looked at.
 */
export async function answerEmulatorUntil(page: Page, account: string, arrived: Locator): Promise<void> {
  const next = page.getByRole('button', { name: new RegExp(account) }).or(page.getByRole('button', { name: 'Accept' }));
  for (let step = 0; step < 6; step++) {
    await arrived.or(next).first().waitFor();
    if (await arrived.isVisible()) return;
    const navigated = page.waitForEvent('framenavigated', (frame) => frame === page.mainFrame());
    await next.first().click();
    await navigated;
  }
  await arrived.waitFor();
}
