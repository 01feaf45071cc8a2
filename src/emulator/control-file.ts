import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTROL_FILE, type ControlFile } from './control-client.ts';
import type { RunningEmulator } from './server.ts';

/** Another live emulator process already serves this data folder. */
export class DataDirInUseError extends Error {
  readonly pid: number;
  readonly controlPath: string;
  constructor(dataDir: string, controlPath: string, pid: number) {
    super(`another emulator (pid ${pid}) is using ${dataDir}`);
    this.pid = pid;
    this.controlPath = controlPath;
  }
}

export function controlFilePath(dataDir: string): string {
  return join(dataDir, CONTROL_FILE);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of a live emulator that wrote this data folder's control file, if any (an unreadable file is a stale one). */
export async function otherEmulatorPid(dataDir: string): Promise<number | undefined> {
  const path = controlFilePath(dataDir);
  if (!existsSync(path)) return undefined;
  try {
    const other = JSON.parse(await readFile(path, 'utf8')) as ControlFile;
    return other.pid !== process.pid && pidAlive(other.pid) ? other.pid : undefined;
  } catch {
    return undefined;
  }
}

/** Throws `DataDirInUseError` while another live emulator serves `dataDir`. */
export async function ensureDataDirFree(dataDir: string): Promise<void> {
  const other = await otherEmulatorPid(dataDir);
  if (other !== undefined) throw new DataDirInUseError(dataDir, controlFilePath(dataDir), other);
}

/**
 * Writes `control.json` (URL, token, pid) so `roster emulator <verb> --data-dir`
 * finds this emulator. Owner-only, and created afresh (never through a stale
 * file or a link someone left there), as the token controls the whole directory.
 */
export async function writeControlFile(dataDir: string, emulator: RunningEmulator): Promise<string> {
  const path = controlFilePath(dataDir);
  const file: ControlFile = { url: emulator.urls.control, token: emulator.ctx.controlToken, pid: process.pid };
  await rm(path, { force: true });
  await writeFile(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return path;
}

export async function removeControlFile(path: string): Promise<void> {
  await rm(path, { force: true });
}
