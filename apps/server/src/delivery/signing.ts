import { createHmac, randomBytes } from "node:crypto";

const SECRET_PREFIX = "whsec_";

/** A new Standard Webhooks signing secret: "whsec_" and 32 random bytes in base64. */
export function generateSigningSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString("base64");
}

/**
 * The Standard Webhooks `webhook-signature` value: "v1," and the base64
 * HMAC-SHA256 of "<id>.<timestamp>.<body>", keyed by the secret's bytes.
 */
export function signPayload(secret: string, messageId: string, timestampSeconds: number, body: string): string {
  const mac = createHmac("sha256", keyOf(secret)).update(`${messageId}.${timestampSeconds}.${body}`).digest("base64");
  return `v1,${mac}`;
}

/** Decoded keys by secret: a webhook signs every delivery with the same one. Bounded, and cleared when full. */
const keys = new Map<string, Buffer>();

function keyOf(secret: string): Buffer {
  let key = keys.get(secret);
  if (key === undefined) {
    key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, "base64");
    if (keys.size >= 10_000) keys.clear();
    keys.set(secret, key);
  }
  return key;
}
