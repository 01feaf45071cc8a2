/**
 * The ids a round has written so far, as a Bloom filter: `mightHold` is never
 * false for an id that was added, and true for one that was not about once in
 * 500 at a million ids. Its size is fixed (2 MB) whatever the tenant's, so a
 * first listing of a large tenant looks up only the few ids it may have
 * written already instead of every id of every page.
 */
export class WrittenIds {
  static readonly #BITS = 1 << 24;
  static readonly #HASHES = 4;
  readonly #bits = new Uint32Array(WrittenIds.#BITS / 32);

  add(id: string): void {
    const [h1, h2] = hashes(id);
    for (let i = 0; i < WrittenIds.#HASHES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & (WrittenIds.#BITS - 1);
      this.#bits[bit >>> 5]! |= 1 << (bit & 31);
    }
  }

  mightHold(id: string): boolean {
    const [h1, h2] = hashes(id);
    for (let i = 0; i < WrittenIds.#HASHES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & (WrittenIds.#BITS - 1);
      if ((this.#bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** Two independent 32-bit FNV-1a hashes of the id's UTF-16 code units (different offset bases); the second made odd so its multiples cover every bit. */
function hashes(id: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  return [a >>> 0, (b | 1) >>> 0];
}
