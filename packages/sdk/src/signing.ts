import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
  type KeyObject,
} from "node:crypto";

/**
 * Standard Webhooks signing, both schemes: HMAC-SHA256 ("v1" signatures,
 * "whsec_" secrets) and ed25519 ("v1a" signatures, a "whsk_" private key
 * and its "whpk_" public key). The one implementation of the signature
 * format: the server signs with it, `verifyWebhook` verifies with it.
 * Only node:crypto; no gRPC.
 */

/** How a webhook's deliveries are signed; the same strings as the server's signature_scheme column. */
export type SignatureScheme = "hmac-sha256" | "ed25519";

const HMAC_PREFIX = "whsec_";
const PRIVATE_PREFIX = "whsk_";
const PUBLIC_PREFIX = "whpk_";
/** Standard base64 with its padding, as the spec's libraries write it. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** The spec's bounds for a symmetric secret. */
const HMAC_MIN_BYTES = 24;
const HMAC_MAX_BYTES = 64;
const GENERATED_HMAC_BYTES = 32;
const ED25519_BYTES = 32;
// An ed25519 key in PKCS#8 (private) and SPKI (public) DER is a fixed prefix and the raw 32 bytes.
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");
const VERSIONS = { "hmac-sha256": "v1", ed25519: "v1a" } as const satisfies Record<SignatureScheme, string>;

/**
 * A new key. HMAC: `{ secret: "whsec_…" }`, 32 random bytes. ed25519:
 * `{ secret: "whsk_…", publicKey: "whpk_…" }`; the secret holds the 32-byte
 * seed followed by the 32-byte public key (the layout Svix and libsodium use),
 * the public key its 32 bytes.
 */
export function generateSigningKey(scheme: SignatureScheme): { secret: string; publicKey?: string } {
  // Plain JavaScript callers may pass anything.
  const given: unknown = scheme;
  if (given === "hmac-sha256") return { secret: HMAC_PREFIX + randomBytes(GENERATED_HMAC_BYTES).toString("base64") };
  if (given === "ed25519") {
    const pair = generateKeyPairSync("ed25519");
    const seed = pair.privateKey.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_ED25519.length);
    const publicKey = rawPublicKey(pair.publicKey);
    return {
      secret: PRIVATE_PREFIX + Buffer.concat([seed, publicKey]).toString("base64"),
      publicKey: PUBLIC_PREFIX + publicKey.toString("base64"),
    };
  }
  throw new TypeError('the signature scheme must be "hmac-sha256" or "ed25519"');
}

/**
 * Validates a caller-supplied secret: "whsec_" and the base64 of 24 to 64
 * bytes, or a "whsk_" ed25519 private key (the base64 of its 32-byte seed, or
 * of the seed and its public key). Returns its scheme. Throws a TypeError that
 * says what is wrong, never quoting the secret.
 */
export function checkSigningSecret(secret: string): SignatureScheme {
  return signingKey(secret).scheme;
}

/** What a receiver verifies with: the secret itself for "whsec_", the "whpk_…" public key for "whsk_". */
export function verificationKeyOf(secret: string): string {
  const key = signingKey(secret);
  return key.scheme === "hmac-sha256" ? secret : PUBLIC_PREFIX + key.publicKey.toString("base64");
}

/**
 * One signature of "<id>.<timestamp>.<body>": "v1,<base64>" (HMAC-SHA256)
 * for a "whsec_" secret, "v1a,<base64>" (ed25519) for a "whsk_" key.
 */
export function signatureOf(
  secret: string,
  messageId: string,
  timestampSeconds: number,
  body: string | Uint8Array,
): string {
  const key = signingKey(secret);
  const prefix = signedPrefix(messageId, timestampSeconds);
  if (key.scheme === "hmac-sha256") {
    return `v1,${createHmac("sha256", key.key).update(prefix).update(body).digest("base64")}`;
  }
  return `v1a,${sign(null, signedContent(prefix, body), key.key).toString("base64")}`;
}

/** The webhook-signature header value for several secrets (during a rotation): their signatures, space-separated. */
export function signWebhook(
  secrets: readonly string[],
  messageId: string,
  timestampSeconds: number,
  body: string | Uint8Array,
): string {
  const given: unknown = secrets;
  if (!Array.isArray(given) || given.length === 0) throw new TypeError("signWebhook needs at least one secret");
  return secrets.map((secret) => signatureOf(secret, messageId, timestampSeconds, body)).join(" ");
}

/** A key a receiver holds, decoded: a "whsec_" secret or a "whpk_" public key. */
export type VerificationKey =
  { readonly scheme: "hmac-sha256"; readonly key: Buffer } | { readonly scheme: "ed25519"; readonly key: KeyObject };

/**
 * Decodes a key a receiver verifies with: "whsec_" and base64 (or the base64
 * alone; any length, as other Standard Webhooks libraries accept) or "whpk_"
 * and the base64 of an ed25519 public key. Throws a TypeError that says what
 * is wrong, never quoting the key.
 */
export function decodeVerificationKey(key: string): VerificationKey {
  return cached(verificationKeys, key, () => {
    const given: unknown = key;
    if (typeof given !== "string") throw new TypeError(`the key must be a string, not ${typeName(given)}`);
    if (given.startsWith(PUBLIC_PREFIX)) {
      const bytes = decodeBase64(given.slice(PUBLIC_PREFIX.length), PUBLIC_PREFIX);
      if (bytes.length !== ED25519_BYTES) {
        throw new TypeError(
          `a whpk_ key holds a ${ED25519_BYTES}-byte ed25519 public key; this one decodes to ${bytes.length} bytes`,
        );
      }
      return {
        scheme: "ed25519",
        key: createPublicKey({ key: Buffer.concat([SPKI_ED25519, bytes]), format: "der", type: "spki" }),
      };
    }
    if (given.startsWith(PRIVATE_PREFIX)) {
      throw new TypeError(
        "a whsk_ key is the private signing key, which stays with the sender: verify with its whpk_ public key (verificationKeyOf gives it)",
      );
    }
    const text = given.startsWith(HMAC_PREFIX) ? given.slice(HMAC_PREFIX.length) : given;
    if (text === "" || !BASE64.test(text)) {
      throw new TypeError(
        "the key is not a webhook secret nor a public key: expected whsec_ followed by base64 (the signingSecret RegisterWebhook returned), or a whpk_ public key",
      );
    }
    return { scheme: "hmac-sha256", key: Buffer.from(text, "base64") };
  });
}

/** The signature version each scheme writes: "v1" (HMAC-SHA256) or "v1a" (ed25519). */
export function signatureVersion(scheme: SignatureScheme): "v1" | "v1a" {
  return VERSIONS[scheme];
}

/** The signatures of a webhook-signature header value ("<version>,<base64>", space-separated), in order. */
export function parseSignatureHeader(value: string): { version: string; signature: string }[] {
  const signatures: { version: string; signature: string }[] = [];
  for (const entry of value.split(/\s+/)) {
    const comma = entry.indexOf(",");
    if (comma > 0) signatures.push({ version: entry.slice(0, comma), signature: entry.slice(comma + 1) });
  }
  return signatures;
}

/**
 * Whether a signature in the webhook-signature header value `header` was made
 * for this message with one of `keys`: a "v1" signature with a secret, a "v1a"
 * one with a public key. Signatures of other versions are passed over.
 */
export function verifySignatureHeader(
  keys: readonly VerificationKey[],
  messageId: string,
  timestampSeconds: number,
  body: string | Uint8Array,
  header: string,
): boolean {
  const signatures = parseSignatureHeader(header);
  const prefix = signedPrefix(messageId, timestampSeconds);
  let content: Buffer | undefined;
  for (const key of keys) {
    const version = VERSIONS[key.scheme];
    const candidates = signatures.filter((s) => s.version === version).map((s) => Buffer.from(s.signature, "base64"));
    if (candidates.length === 0) continue;
    if (key.scheme === "hmac-sha256") {
      const expected = createHmac("sha256", key.key).update(prefix).update(body).digest();
      if (candidates.some((given) => given.length === expected.length && timingSafeEqual(given, expected))) return true;
    } else {
      content ??= signedContent(prefix, body);
      const message = content;
      if (candidates.some((given) => verify(null, message, key.key, given))) return true;
    }
  }
  return false;
}

type SigningKey = { scheme: "hmac-sha256"; key: Buffer } | { scheme: "ed25519"; key: KeyObject; publicKey: Buffer };

/**
 * Decoded keys by secret: a webhook signs every attempt with the same one, and
 * an ed25519 KeyObject is costly to build. Bounded: the oldest go first.
 */
const CACHE_LIMIT = 10_000;
const signingKeys = new Map<string, SigningKey>();
const verificationKeys = new Map<string, VerificationKey>();

function cached<T>(cache: Map<string, T>, text: string, decode: () => T): T {
  let value = cache.get(text);
  if (value === undefined) {
    value = decode();
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
    cache.set(text, value);
  }
  return value;
}

function signingKey(secret: string): SigningKey {
  return cached(signingKeys, secret, () => decodeSigningKey(secret));
}

function decodeSigningKey(secret: string): SigningKey {
  // Plain JavaScript callers may pass anything, such as an unset variable.
  const given: unknown = secret;
  if (typeof given !== "string") throw new TypeError(`the signing secret must be a string, not ${typeName(given)}`);
  if (given.startsWith(HMAC_PREFIX)) {
    const key = decodeBase64(given.slice(HMAC_PREFIX.length), HMAC_PREFIX);
    if (key.length < HMAC_MIN_BYTES || key.length > HMAC_MAX_BYTES) {
      throw new TypeError(
        `a whsec_ secret holds ${HMAC_MIN_BYTES} to ${HMAC_MAX_BYTES} bytes; this one decodes to ${key.length} bytes`,
      );
    }
    return { scheme: "hmac-sha256", key };
  }
  if (given.startsWith(PRIVATE_PREFIX)) {
    const bytes = decodeBase64(given.slice(PRIVATE_PREFIX.length), PRIVATE_PREFIX);
    if (bytes.length !== ED25519_BYTES && bytes.length !== 2 * ED25519_BYTES) {
      throw new TypeError(
        `a whsk_ key holds a 32-byte ed25519 seed, or the seed and its 32-byte public key; this one decodes to ${bytes.length} bytes`,
      );
    }
    const key = createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519, bytes.subarray(0, ED25519_BYTES)]),
      format: "der",
      type: "pkcs8",
    });
    const publicKey = rawPublicKey(createPublicKey(key));
    if (bytes.length > ED25519_BYTES && !publicKey.equals(bytes.subarray(ED25519_BYTES))) {
      throw new TypeError("the whsk_ key's last 32 bytes are not the public key of its first 32 (its seed)");
    }
    return { scheme: "ed25519", key, publicKey };
  }
  if (given.startsWith(PUBLIC_PREFIX)) {
    throw new TypeError(
      "a whpk_ key is a public key: it verifies signatures but cannot make them (sign with its whsk_ key)",
    );
  }
  throw new TypeError('a signing secret starts with "whsec_" (HMAC-SHA256) or "whsk_" (an ed25519 private key)');
}

function decodeBase64(text: string, prefix: string): Buffer {
  if (text === "") throw new TypeError(`nothing follows ${prefix}`);
  if (!BASE64.test(text))
    throw new TypeError(`what follows ${prefix} is not base64 (A-Z, a-z, 0-9, + and /, padded with =)`);
  return Buffer.from(text, "base64");
}

function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "spki" }).subarray(SPKI_ED25519.length);
}

function signedPrefix(messageId: string, timestampSeconds: number): string {
  if (typeof messageId !== "string" || messageId === "")
    throw new TypeError("the message id must be a non-empty string");
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new TypeError("the timestamp must be a whole number of seconds since 1970");
  }
  return `${messageId}.${timestampSeconds}.`;
}

function signedContent(prefix: string, body: string | Uint8Array): Buffer {
  return typeof body === "string"
    ? Buffer.from(prefix + body, "utf8")
    : Buffer.concat([Buffer.from(prefix, "utf8"), body]);
}

function typeName(value: unknown): string {
  return value === null ? "null" : typeof value;
}
