import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Wrong flags or arguments: exit code 2. */
export class UsageError extends Error {}

export function intFlag(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`--${name} must be a whole number, not "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, not ${n}`);
  return n;
}

export function numberFlag(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, not "${value}"`);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, not ${n}`);
  return n;
}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, context: string) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true, allowNegative: true });
  } catch (err) {
    throw new UsageError(`${context}: ${(err as Error).message.replace(/\. To specify a positional.*$/s, '')}`);
  }
}

export const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

