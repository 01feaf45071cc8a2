import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseEnv } from 'node:util';

/** Writes a file in one rename, readable by its owner only: a reader sees the old file or the new one, never half of one. */
export async function writePrivateFile(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

export interface DotEnvChange {
  key: string;
  /** `written` (was absent), `unchanged`, `replaced` (force), `skipped` (kept the file's own value). */
  status: 'written' | 'unchanged' | 'replaced' | 'skipped';
  value: string;
}

/**
 * Writes settings to a `.env` file: missing ones are appended, equal ones left
 * alone, different ones kept unless `force` (or the key is in `replace`). The
 * file's other lines and comments stay as they are; it is written owner-only,
 * in one rename.
 */
export async function updateDotEnv(file: string, wanted: Record<string, string>, options: { force: boolean; replace?: ReadonlySet<string> }): Promise<DotEnvChange[]> {
  for (const [key, value] of Object.entries(wanted)) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(key) || /[\r\n]/.test(value)) throw new Error(`cannot write ${key} to .env: names are capitals, values one line`);
  }
  const original = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const current = parseEnv(original) as Record<string, string>;
  const lines = original === '' ? [] : original.replace(/\n$/, '').split('\n');
  const changes: DotEnvChange[] = [];
  for (const [key, value] of Object.entries(wanted)) {
    if (!(key in current)) {
      lines.push(`${key}=${value}`);
      changes.push({ key, status: 'written', value });
    } else if (current[key] === value) {
      changes.push({ key, status: 'unchanged', value });
    } else if (options.force || options.replace?.has(key)) {
      const pattern = new RegExp(`^\\s*(export\\s+)?${key}\\s*=`);
      lines[lines.findIndex((line) => pattern.test(line))] = `${key}=${value}`;
      changes.push({ key, status: 'replaced', value });
    } else {
      changes.push({ key, status: 'skipped', value });
    }
  }
  if (changes.some((c) => c.status === 'written' || c.status === 'replaced') || !existsSync(file)) await writePrivateFile(file, `${lines.join('\n')}\n`);
  return changes;
}
