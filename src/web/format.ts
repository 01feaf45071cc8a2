/** Formatting shared by every page; dates are shown in UTC so every viewer reads the same thing. */
export interface Formatters {
  number(n: number): string;
  /** e.g. "2026-11-22 14:05 UTC". */
  time(ms: number | null): string;
  /** e.g. "3 minutes ago". */
  ago(ms: number | null): string;
  duration(ms: number): string;
  iso(ms: number): string;
}

const numberFormat = new Intl.NumberFormat('en-GB');
const relative = new Intl.RelativeTimeFormat('en-GB', { numeric: 'auto' });
const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1000],
];

export function formatters(now: number): Formatters {
  return {
    number: (n) => numberFormat.format(n),
    time: (ms) => (ms === null ? 'never' : `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`),
    ago: (ms) => {
      if (ms === null) return 'never';
      const elapsed = ms - now;
      const [unit, size] = UNITS.find(([, size]) => Math.abs(elapsed) >= size) ?? UNITS.at(-1)!;
      return relative.format(Math.round(elapsed / size), unit);
    },
    duration: (ms) => (ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`),
    iso: (ms) => new Date(ms).toISOString(),
  };
}
