import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import forge from "node-forge";

/** PEM files of a throwaway PKI, made at run time (no key is ever committed). */
export interface TestCertificates {
  dir: string;
  /** The CA that signs the server and client certificates. */
  caFile: string;
  /** For 127.0.0.1 and localhost. */
  serverCertFile: string;
  serverKeyFile: string;
  /** A client certificate signed by the CA. */
  clientCertFile: string;
  clientKeyFile: string;
  /** A CA that signed nothing of the above, and a client certificate of its own. */
  otherCaFile: string;
  otherClientCertFile: string;
  otherClientKeyFile: string;
  read(file: string): Buffer;
  remove(): void;
}

interface Issued {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  certPem: string;
  keyPem: string;
}

function issue(options: { commonName: string; issuer?: Issued; ca?: boolean; server?: boolean }): Issued {
  // Node makes the key (fast); forge makes the certificate.
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  cert.serialNumber = `01${randomBytes(8).toString("hex")}`;
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3_600_000);
  const subject = [{ name: "commonName", value: options.commonName }];
  cert.setSubject(subject);
  cert.setIssuer(options.issuer ? options.issuer.cert.subject.attributes : subject);
  const extensions: object[] = [{ name: "basicConstraints", cA: options.ca === true }];
  if (options.ca) {
    extensions.push({ name: "keyUsage", keyCertSign: true, cRLSign: true });
  } else {
    extensions.push(
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: options.server === true, clientAuth: options.server !== true },
    );
  }
  if (options.server) {
    extensions.push({
      name: "subjectAltName",
      altNames: [
        { type: 2, value: "localhost" },
        { type: 7, ip: "127.0.0.1" },
      ],
    });
  }
  cert.setExtensions(extensions);
  const key = forge.pki.privateKeyFromPem(privateKey);
  cert.sign(options.issuer?.key ?? key, forge.md.sha256.create());
  return { cert, key, certPem: forge.pki.certificateToPem(cert), keyPem: privateKey };
}

/** A CA, a server certificate and client certificates, written to a temporary folder. */
export function createTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "httpqueue-tls-"));
  const write = (name: string, pem: string) => {
    const file = join(dir, name);
    writeFileSync(file, pem, { mode: 0o600 });
    return file;
  };
  const ca = issue({ commonName: "httpqueue test CA", ca: true });
  const server = issue({ commonName: "localhost", issuer: ca, server: true });
  const client = issue({ commonName: "httpqueue test client", issuer: ca });
  const otherCa = issue({ commonName: "another CA", ca: true });
  const otherClient = issue({ commonName: "a stranger", issuer: otherCa });
  return {
    dir,
    caFile: write("ca.pem", ca.certPem),
    serverCertFile: write("server.pem", server.certPem),
    serverKeyFile: write("server-key.pem", server.keyPem),
    clientCertFile: write("client.pem", client.certPem),
    clientKeyFile: write("client-key.pem", client.keyPem),
    otherCaFile: write("other-ca.pem", otherCa.certPem),
    otherClientCertFile: write("other-client.pem", otherClient.certPem),
    otherClientKeyFile: write("other-client-key.pem", otherClient.keyPem),
    read: (file) => readFileSync(file),
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
