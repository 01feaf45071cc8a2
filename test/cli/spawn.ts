import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The environment of a clean machine: no Entra settings unless a test adds them. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...extra };
}

export interface RosterProcess {
  child: ChildProcess;
  /** The exit code (null when killed by a signal it did not handle). */
  exited: Promise<number | null>;
  out(): string;
  err(): string;
  /** Waits until the output (stdout by default) matches, failing if the process exits or `ms` pass first. */
  waitFor(pattern: RegExp, ms?: number, stream?: 'stdout' | 'stderr'): Promise<void>;
}

/** Runs `node bin/roster.js` in child processes from `cwd()`; `killAll()` ends the ones a failed test left. */
export function rosterRunner(cwd: () => string) {
  const children = new Set<ChildProcess>();
  const spawnRoster = (args: string[], extraEnv: Record<string, string>): RosterProcess => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: cwd(), env: env(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => {
        children.delete(child);
        resolve(code);
      }),
    );
    return {
      child,
      exited,
      out: () => stdout,
      err: () => stderr,
      async waitFor(pattern, ms = 60_000, stream = 'stdout') {
        for (let waited = 0; !pattern.test(stream === 'stdout' ? stdout : stderr); waited += 50) {
          if (waited > ms || child.exitCode !== null) assert.fail(`never printed ${pattern}; stdout: ${stdout}\nstderr: ${stderr.slice(-2000)}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      },
    };
  };
  return {
    spawnRoster,
    async runRoster(args: string[], extraEnv: Record<string, string> = {}) {
      const run = spawnRoster(args, extraEnv);
      const code = await run.exited;
      return { code, stdout: run.out(), stderr: run.err() };
    },
    killAll() {
      for (const child of children) child.kill('SIGKILL');
    },
  };
}
