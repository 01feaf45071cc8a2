import { createQueryId, type Compilable, type CompiledQuery, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** Stands for a value in a query built once; no real value starts with a NUL. */
function placeholder(name: string): string {
  return `\u0000${name}`;
}

/**
 * A query that Kysely builds and compiles once and then runs with new values.
 * Kysely builds and compiles every query anew, and for a small query on every
 * request that costs more than SQLite's own work. `build` is handed a
 * placeholder for each named value and may use them only as bound values
 * (never in an identifier or raw SQL): the placeholders are swapped for the
 * values in the compiled parameters. A Kysely plugin's `transformQuery` sees
 * the query once, when it is compiled; `transformResult` sees every result.
 */
export class CompiledOnce<Name extends string, Row> {
  readonly #db: Kysely<Database>;
  readonly #names: readonly Name[];
  readonly #build: (db: Kysely<Database>, values: Record<Name, string>) => Compilable<Row>;
  #compiled: { query: CompiledQuery<Row>; slots: (Name | null)[] } | undefined;

  /** `build` runs on the first `execute`, with the same `db` the query then runs on. */
  constructor(db: Kysely<Database>, names: readonly Name[], build: (db: Kysely<Database>, values: Record<Name, string>) => Compilable<Row>) {
    this.#db = db;
    this.#names = names;
    this.#build = build;
  }

  async execute(values: Record<Name, unknown>): Promise<Row[]> {
    const { query, slots } = (this.#compiled ??= this.#compile());
    const parameters = query.parameters.map((given, i) => {
      const slot = slots[i];
      return slot === null || slot === undefined ? given : values[slot];
    });
    const result = await this.#db.executeQuery<Row>({ ...query, parameters, queryId: createQueryId() });
    return result.rows;
  }

  #compile(): { query: CompiledQuery<Row>; slots: (Name | null)[] } {
    const byPlaceholder = new Map(this.#names.map((name) => [placeholder(name), name]));
    const query = this.#build(this.#db, Object.fromEntries(this.#names.map((name) => [name, placeholder(name)])) as Record<Name, string>).compile();
    const slots = query.parameters.map((given) => (typeof given === 'string' ? (byPlaceholder.get(given) ?? null) : null));
    for (const name of this.#names) {
      if (!slots.includes(name)) throw new Error(`the compiled query binds no parameter for ${name}`);
    }
    if (query.sql.includes('\u0000')) throw new Error('a placeholder was written into the SQL text instead of bound');
    return { query, slots };
  }
}
