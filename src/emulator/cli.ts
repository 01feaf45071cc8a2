import { ControlError } from './control-client.ts';
import { log, UsageError } from './cli/flags.ts';
import { startCommand } from './cli/start.ts';
import { runVerb, VERB_WORDS } from './cli/verbs.ts';

export type { ReadyLine } from './cli/start.ts';

/** `roster emulator ...`: start it, or drive a running one. Returns the exit code, or 'running'. */
export async function emulatorCommand(args: string[]): Promise<number | 'running'> {
  try {
    if (args[0] !== undefined && VERB_WORDS.has(args[0])) return await runVerb(args);
    return await startCommand(args);
  } catch (err) {
    return reportError('roster emulator', err);
  }
}

function reportError(command: string, err: unknown): number {
  if (err instanceof UsageError) {
    log(`${err.message}\nSee: roster emulator --help`);
    return 2;
  }
  if (err instanceof ControlError) {
    log(`${command}: ${err.message}`);
    return 1;
  }
  log(`${command}: ${(err as Error).stack ?? String(err)}`);
  return 1;
}
