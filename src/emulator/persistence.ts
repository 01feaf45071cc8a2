import type { Directory } from './model.ts';

/** Loads saved state into `directory`; false when the folder holds none. */
export async function loadState(_dataDir: string, _directory: Directory): Promise<boolean> {
  return false;
}

export async function saveState(_dataDir: string, _directory: Directory): Promise<void> {}
