import type { KeyObject } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { createRsaKeyWithCertificate, describeCertificate, privateKeyFromPem, type CertificateInfo } from './pki.ts';

/** How a signing key is stored in the emulator's data folder. */
export interface StoredSigningKey {
  certPem: string;
  keyPem: string;
  createdAtMs: number;
  /**
   * A key published for one tenant only: its JWKS `issuer` is that tenant's
   * exact issuer. It never signs ordinary tokens.
   */
  tenantId?: string;
}

interface LoadedKey extends StoredSigningKey {
  kid: string;
  cert: CertificateInfo;
  privateKey: KeyObject;
}

export interface JsonWebKeyEntry {
  kty: 'RSA';
  use: 'sig' | 'enc';
  kid: string;
  x5t: string;
  n: string;
  e: string;
  x5c: string[];
  issuer: string;
}

/** Earlier keys stay published after a rotation so tokens they signed still verify. */
const KEYS_KEPT_AFTER_ROTATION = 3;

/**
 * Token signing keys: the newest signs, the earlier ones stay in the JWKS. Like
 * Entra, the `kid` (and `x5t`) is the certificate's SHA-1 thumbprint.
 */
export class SigningKeyring {
  #keys: LoadedKey[] = [];

  static async create(count = 2): Promise<SigningKeyring> {
    const ring = new SigningKeyring();
    for (let i = 0; i < count; i++) ring.#add(await SigningKeyring.#newKey());
    return ring;
  }

  static fromStored(stored: StoredSigningKey[]): SigningKeyring {
    if (stored.length === 0) throw new Error('a signing keyring needs at least one key');
    const ring = new SigningKeyring();
    for (const key of stored) ring.#add(key);
    return ring;
  }

  toStored(): StoredSigningKey[] {
    return this.#keys.map(({ certPem, keyPem, createdAtMs, tenantId }) => ({ certPem, keyPem, createdAtMs, ...(tenantId ? { tenantId } : {}) }));
  }

  /** Adds a key whose JWKS `issuer` names only `tenantId`; returns its kid. */
  async addTenantKey(tenantId: string): Promise<string> {
    const key = await SigningKeyring.#newKey();
    this.#add({ ...key, tenantId });
    return this.#keys[this.#keys.length - 1]!.kid;
  }

  /** Publishes unusable keys beside the real ones (an encryption key, a key without `kid` match), as real sets may. */
  withDecoys = false;

  get currentKid(): string {
    return this.#current().kid;
  }

  get kids(): string[] {
    return this.#keys.map((k) => k.kid);
  }

  /**
   * Adds a new key that signs from now on. `dropPrevious` is the emergency
   * rollover: earlier keys vanish from the JWKS at once.
   */
  async rotate(options: { dropPrevious?: boolean } = {}): Promise<string> {
    const key = await SigningKeyring.#newKey();
    if (options.dropPrevious) this.#keys = [];
    this.#add(key);
    const shared = this.#keys.filter((k) => !k.tenantId);
    const dropped = new Set(shared.slice(0, Math.max(0, shared.length - KEYS_KEPT_AFTER_ROTATION)));
    this.#keys = this.#keys.filter((k) => !dropped.has(k));
    return this.currentKid;
  }

  /** The JWKS document; `issuer` is the per-key issuer (the `{tenantid}` template for shared keys). */
  jwks(issuerTemplate: string): { keys: JsonWebKeyEntry[] } {
    // Newest last would hint at an order; Entra promises none, so publish newest first.
    const keys: JsonWebKeyEntry[] = [...this.#keys].reverse().map((key) => {
      const jwk = key.cert.publicKey.export({ format: 'jwk' }) as { n: string; e: string };
      return {
        kty: 'RSA',
        use: 'sig',
        kid: key.kid,
        x5t: key.cert.x5t,
        n: jwk.n,
        e: jwk.e,
        x5c: [key.cert.derBase64],
        issuer: key.tenantId ? issuerTemplate.replace('{tenantid}', key.tenantId) : issuerTemplate,
      };
    });
    if (this.withDecoys && keys[0]) {
      // Same key material as a real key but for encryption, and a signing key nobody holds.
      keys.push({ ...keys[0], use: 'enc', kid: `${keys[0].kid}-enc` });
      keys.push({ ...keys[0], kid: 'decoy-no-private-key', x5t: 'decoy-no-private-key', n: keys[0].n.split('').reverse().join('') });
    }
    return { keys };
  }

  async sign(payload: JWTPayload, extraHeader: Record<string, unknown> = {}, kid?: string): Promise<string> {
    const key = kid ? this.#keys.find((k) => k.kid === kid) : this.#current();
    if (!key) throw new Error(`no signing key ${kid}`);
    return new SignJWT(payload)
      .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: key.kid, x5t: key.cert.x5t, ...extraHeader })
      .sign(key.privateKey);
  }

  /** Verifies a token this emulator signed (Graph bearer tokens). Throws on any failure. */
  async verify(token: string, nowSeconds: number): Promise<JWTPayload> {
    const { kid, alg } = decodeProtectedHeader(token);
    const key = this.#keys.find((k) => k.kid === kid);
    if (!key || alg !== 'RS256') throw new Error('token not signed by a current key');
    const { payload } = await jwtVerify(token, key.cert.publicKey, {
      algorithms: ['RS256'],
      currentDate: new Date(nowSeconds * 1000),
    });
    return payload;
  }

  #current(): LoadedKey {
    const key = this.#keys.findLast((k) => !k.tenantId);
    if (!key) throw new Error('no signing key');
    return key;
  }

  #add(stored: StoredSigningKey): void {
    const cert = describeCertificate(stored.certPem);
    this.#keys.push({ ...stored, kid: cert.x5t, cert, privateKey: privateKeyFromPem(stored.keyPem) });
  }

  static async #newKey(): Promise<StoredSigningKey> {
    const { certPem, keyPem } = await createRsaKeyWithCertificate('Roster Emulator Token Signing');
    return { certPem, keyPem, createdAtMs: Date.now() };
  }
}
