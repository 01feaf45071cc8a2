import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/config.ts';

const problemsOf = (env: Record<string, string>): string[] => {
  try {
    loadConfig(env, '/nonexistent');
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('configuration: Graph change notifications', () => {
  test('off unless NOTIFICATIONS=on', () => {
    assert.deepEqual(loadConfig({}, '/nonexistent').notifications, { enabled: false });
    assert.deepEqual(loadConfig({ NOTIFICATIONS: 'off' }, '/nonexistent').notifications, { enabled: false });
  });

  test('on: NOTIFICATION_URL, or PUBLIC_URL when it is the public https address; scheduled rounds every hour while healthy unless set', () => {
    const own = loadConfig({ NOTIFICATIONS: 'on', PUBLIC_URL: 'https://roster.example.com' }, '/nonexistent').notifications;
    assert.deepEqual(own, { enabled: true, url: new URL('https://roster.example.com'), healthyIntervalMinutes: 60 });
    const given = loadConfig({ NOTIFICATIONS: 'on', NOTIFICATION_URL: 'https://hooks.example.com', NOTIFICATION_SYNC_INTERVAL_MINUTES: '120' }, '/nonexistent').notifications;
    assert.deepEqual(given, { enabled: true, url: new URL('https://hooks.example.com'), healthyIntervalMinutes: 120 });
    for (const local of ['http://localhost:3000', 'http://127.0.0.1:3000', 'http://[::1]:3000']) {
      assert.equal(loadConfig({ NOTIFICATIONS: 'on', NOTIFICATION_URL: local }, '/nonexistent').notifications.enabled, true, local);
    }
  });

  test('each mistake is named with what to do about it', () => {
    assert.match(problemsOf({ NOTIFICATIONS: 'yes' }).join(), /NOTIFICATIONS must be on or off/);
    assert.match(problemsOf({ NOTIFICATIONS: 'on', NOTIFICATION_URL: 'http://roster.example.com' }).join(), /NOTIFICATION_URL must use https: Microsoft Graph delivers change notifications only to a public https URL/);
    assert.match(problemsOf({ NOTIFICATIONS: 'on', PUBLIC_URL: 'http://10.0.0.5:3000' }).join(), /PUBLIC_URL \(used as NOTIFICATION_URL\) must use https/);
    assert.match(problemsOf({ NOTIFICATIONS: 'on', NOTIFICATION_URL: 'https://roster.example.com/hooks' }).join(), /bare origin/);
    assert.match(problemsOf({ NOTIFICATIONS: 'on', NOTIFICATION_URL: 'ftp://roster.example.com' }).join(), /NOTIFICATION_URL must use https or http/);
    assert.match(problemsOf({ NOTIFICATION_URL: 'https://roster.example.com' }).join(), /NOTIFICATIONS is not on/);
    assert.match(problemsOf({ NOTIFICATIONS: 'on', NOTIFICATION_SYNC_INTERVAL_MINUTES: '0' }).join(), /between 1 and 1440/);
  });
});
