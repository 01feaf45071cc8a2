import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import pino from 'pino';
import { ConfigError, environmentWithDotEnv, loadConfig, type RosterConfig } from '../config/config.ts';
import { AuthorityUnavailableError } from '../identity/metadata.ts';
import { StoreUnavailableError } from '../store/database.ts';
import { createLogger } from '../web/logger.ts';

/** A command's exit code, or `running` when it serves until a signal stops it. */
export type Outcome = number | 'running';

export interface Command<Values = Record<string, unknown>> {
  name: string;
  /** The full `--help` text. */
  usage: string;
  /** Options beyond `--help`. */
  options?: ParseArgsOptionsConfig;
  /** Whether it takes words after its name (`roster tenants show ID`). */
  positionals?: boolean;
  run(values: Values, positionals: string[]): Promise<Outcome>;
}

/** Parses a command's options, answers `--help`, and turns start-up failures into a clear message and an exit code. */
export async function runCommand<Values>(command: Command<Values>, args: string[]): Promise<Outcome> {
  let values: Values & { help?: boolean };
  let positionals: string[];
  try {
    const parsed = parseArgs({ args, options: { help: { type: 'boolean', short: 'h' }, ...command.options }, strict: true, allowPositionals: command.positionals ?? false });
    values = parsed.values as Values & { help?: boolean };
    positionals = parsed.positionals;
  } catch (err) {
    process.stderr.write(`roster ${command.name}: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(command.usage);
    return 0;
  }
  try {
    return await command.run(values, positionals);
  } catch (err) {
    return startupFailure(command.name, err);
  }
}

/** Exit 2 for settings to fix, 1 for a database, identity provider or port that cannot be used; anything else is a bug and crashes. */
function startupFailure(command: string, err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`roster ${command}: ${err.message}\nSee the README for every setting.\n`);
    return 2;
  }
  if (err instanceof StoreUnavailableError || err instanceof AuthorityUnavailableError) {
    process.stderr.write(`roster ${command}: ${err.message}\n`);
    return 1;
  }
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    process.stderr.write(`roster ${command}: ${(err as Error).message}: another program uses that port; set PORT to a free one.\n`);
    return 1;
  }
  throw err;
}

/** The environment's settings (with `.env`), and the raw environment for the few choices settings do not make. */
export function readSettings(): { config: RosterConfig; env: Record<string, string | undefined> } {
  const env = environmentWithDotEnv(process.env, process.cwd());
  return { config: loadConfig(env), env };
}

/** Structured logs on stderr, so stdout stays for what a person asked for. */
export function stderrLogger(level: string) {
  return createLogger(level, pino.destination(2));
}

/** Refuses commands that need real Entra settings in demo mode; returns the exit code, or null to go on. */
export function needsEntra(command: string, config: RosterConfig, instead: string): number | null {
  if (!config.demo) return null;
  process.stderr.write(`roster ${command}: needs Entra settings (ENTRA_CLIENT_ID and a secret or certificate); ${instead}\n`);
  return 2;
}

/**
 * Graceful shutdown on SIGTERM and SIGINT: `stop` stops taking work, lets the
 * work in hand finish its current step and releases what it holds; the process
 * then exits 0. Past `boundSeconds`, or on a second signal, it exits 1 at once.
 */
export function stopOnSignals(command: string, stop: () => Promise<void>, boundSeconds: number): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`${signal} again: roster ${command} exits now, without finishing its work.\n`);
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`\n${signal}: roster ${command} is stopping (at most ${boundSeconds} s; a second signal exits at once)…\n`);
    setTimeout(() => {
      process.stderr.write(`roster ${command} did not stop within ${boundSeconds} s (SHUTDOWN_TIMEOUT_SECONDS); exiting.\n`);
      process.exit(1);
    }, boundSeconds * 1000);
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`roster ${command} could not stop cleanly: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
