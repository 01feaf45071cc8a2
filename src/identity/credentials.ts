import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export interface CertificateCredential {
  certificatePem: string;
  privateKeyPem: string;
  /** Hex SHA-256 of the certificate (MSAL's `thumbprintSha256`). */
  thumbprintSha256: string;
  notAfter: Date;
}

export interface AppCredentials {
  clientId: string;
  clientSecret: string | null;
  certificate: CertificateCredential | null;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
const KEY_BLOCK = /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC )?PRIVATE KEY-----/;

/** Reads a PEM file holding the app's certificate and its private key. */
export async function loadCertificateCredential(path: string): Promise<CertificateCredential> {
  const pem = await readFile(path, 'utf8');
  const certificatePem = CERT_BLOCK.exec(pem)?.[0];
  const privateKeyPem = KEY_BLOCK.exec(pem)?.[0];
  if (!certificatePem || !privateKeyPem) {
    throw new Error(`ENTRA_CLIENT_CERTIFICATE (${path}) must hold both the certificate and its private key in PEM form`);
  }
  const certificate = new X509Certificate(certificatePem);
  if (!certificate.checkPrivateKey(createPrivateKey(privateKeyPem))) {
    throw new Error(`ENTRA_CLIENT_CERTIFICATE (${path}): the private key does not belong to the certificate`);
  }
  return {
    certificatePem,
    privateKeyPem,
    thumbprintSha256: certificate.fingerprint256.replaceAll(':', '').toLowerCase(),
    notAfter: new Date(certificate.validTo),
  };
}
