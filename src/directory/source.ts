import { GraphRequestError, type AccessTokenSource, type GraphPage, type GraphReader } from './graph-reader.ts';
import type { DeltaItem, ObjectKind } from './object-kind.ts';

/**
 * Where a kind's pages come from: Graph's delta function (a full listing, or a
 * round from a delta link, each page pointing at the next), and the deleted
 * items a full listing leaves out.
 */
export class GraphSource {
  readonly #reader: GraphReader;
  readonly #graphBaseUrl: URL;
  readonly #pageSize: number;
  readonly #token: AccessTokenSource;

  constructor(options: { reader: GraphReader; graphBaseUrl: URL; pageSize: number; token: AccessTokenSource }) {
    this.#reader = options.reader;
    this.#graphBaseUrl = options.graphBaseUrl;
    this.#pageSize = options.pageSize;
    this.#token = options.token;
  }

  /** The first page of a full listing; query parameters go on the first request only. */
  fullListingUrl(kind: ObjectKind<unknown, unknown>): string {
    const url = new URL(kind.deltaPath, this.#graphBaseUrl);
    url.searchParams.set('$select', kind.select.join(','));
    return url.href;
  }

  /** One page from a delta, next or first link. Minimal updates carry only what changed; the fold merges them. */
  page(url: string): Promise<GraphPage<DeltaItem>> {
    return this.#reader.getPage<DeltaItem>(url, this.#token, { prefer: `odata.maxpagesize=${this.#pageSize}, return=minimal` });
  }

  /**
   * Every soft-deleted object of the kind, by lower-cased id (small: they are
   * purged after 30 days); null when the service has no such listing (404, or
   * Graph's 400 for an unknown segment), in which case the caller keeps what it
   * already holds as soft-deleted.
   */
  async softDeletedIds(kind: ObjectKind<unknown, unknown>): Promise<Set<string> | null> {
    const ids = new Set<string>();
    const first = new URL(kind.deletedItemsPath, this.#graphBaseUrl);
    first.searchParams.set('$select', 'id');
    first.searchParams.set('$top', String(this.#pageSize));
    for (let url: string | undefined = first.href; url; ) {
      let page: GraphPage<{ id: string }>;
      try {
        page = await this.#reader.getPage<{ id: string }>(url, this.#token);
      } catch (err) {
        if (url === first.href && isUnknownResource(err)) return null;
        throw err;
      }
      for (const item of page.value ?? []) ids.add(item.id.toLowerCase());
      url = page['@odata.nextLink'];
    }
    return ids;
  }
}

function isUnknownResource(err: unknown): boolean {
  return err instanceof GraphRequestError && (err.graphStatus === 404 || (err.graphStatus === 400 && /resource not found for the segment/i.test(err.message)));
}
