import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import type { FastifyReply } from 'fastify';

/** Characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection). */
const FORMULA_STARTS = new Set(['=', '+', '-', '@']);
/** What a spreadsheet skips before it looks for a formula: whitespace, control and format characters, and cell separators of other locales. */
const IGNORED_PREFIX = /^[\s\p{Cc}\p{Cf},;]+/u;

/**
 * Directory values are attacker-controlled: a cell a spreadsheet would run as
 * a formula gets an apostrophe in front. The check looks past leading blanks,
 * control characters and separators, at the first significant character in
 * its compatibility form (a full-width ＝ is an =), and any cell that starts
 * with a tab or carriage return is neutralised too, as OWASP advises. Every
 * cell is also quoted (see the export), so no separator inside splits it.
 */
export function neutraliseFormula(value: string): string {
  if (/^[\t\r]/.test(value)) return `'${value}`;
  const [first] = value.replace(IGNORED_PREFIX, '');
  return first !== undefined && FORMULA_STARTS.has(first.normalize('NFKC').charAt(0)) ? `'${value}` : value;
}

/**
 * Streams rows as a CSV download: one column per `[name, value]`, every cell
 * neutralised and quoted, a BOM so spreadsheets read UTF-8, never cached.
 */
export function sendCsv<T>(reply: FastifyReply, columns: readonly (readonly [string, (row: T) => string])[], rows: AsyncIterable<T>, filename: string): FastifyReply {
  const cells = Readable.from(
    (async function* () {
      for await (const row of rows) yield columns.map(([, value]) => neutraliseFormula(value(row)));
    })(),
  );
  const csv = cells.pipe(stringify({ header: true, columns: columns.map(([name]) => name), bom: true, quoted: true }));
  cells.on('error', (err) => csv.destroy(err));
  return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${filename}"`).header('cache-control', 'no-store').send(csv);
}
