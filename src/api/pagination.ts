import { Type, type TSchema } from 'typebox';
import { InvalidInputError } from '../tenants/errors.ts';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

/** `limit` and `after` of every list; spread into a route's querystring schema. */
export const PageParams = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT, description: `Items per page, 1 to ${MAX_LIMIT}.` })),
  after: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'The `next_cursor` of the previous page.' })),
};

/** `{ data, next_cursor }` of a list of `item`. */
export function PageOf<T extends TSchema>(item: T, name: string) {
  return Type.Object(
    {
      data: Type.Array(item),
      next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `after` for the next page; null on the last page.' }),
    },
    { title: name },
  );
}

/**
 * Cursors are opaque to clients: base64url of the list's name and the keyset
 * position (the sort key of the last item). They carry no secret and grant
 * nothing: the route still applies the key's tenant and the filters.
 */
export function encodeCursor(list: string, position: string): string {
  return Buffer.from(JSON.stringify([list, position])).toString('base64url');
}

/** The keyset position in `after`, or a 400 naming `after` when it is not a cursor of this list. */
export function decodeCursor(list: string, after: string | undefined): string | undefined {
  if (after === undefined) return undefined;
  let decoded: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(after)) throw new Error('not base64url');
    decoded = JSON.parse(Buffer.from(after, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidInputError('after', '"after" is not a cursor Roster issued: pass the next_cursor of the previous page unchanged.');
  }
  if (!Array.isArray(decoded) || decoded.length !== 2 || decoded[0] !== list || typeof decoded[1] !== 'string' || decoded[1].length === 0) {
    throw new InvalidInputError('after', '"after" is not a cursor of this list: pass the next_cursor of the previous page unchanged.');
  }
  return decoded[1];
}

/**
 * A page from rows fetched with `limit + 1`: the extra row only says there is
 * a next page, so the last page never costs an empty request.
 */
export function pageOf<Row, Item>(list: string, rows: Row[], limit: number, position: (row: Row) => string, toItem: (row: Row) => Item): { data: Item[]; next_cursor: string | null } {
  const more = rows.length > limit;
  const shown = more ? rows.slice(0, limit) : rows;
  return { data: shown.map(toItem), next_cursor: more ? encodeCursor(list, position(shown.at(-1)!)) : null };
}
