import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { KeyRing } from "./keys.js";

/**
 * How signing secrets are kept in the database. Every secret written goes
 * through `seal`, every secret read through `open`: the stored form never
 * leaves the server, the plain form never reaches the database (once the
 * server has SECRETS_KEY).
 */
export interface SecretCipher {
  /** The form to store for a secret ("whsec_…", "whsk_…"). */
  seal(secret: string): string;
  /** The secret of a stored form ("" stays ""). Throws a SecretUnavailableError when no key of the server opens it. */
  open(stored: string): string;
}

/**
 * A stored secret that this server cannot open: sealed with a key it does not
 * hold, or damaged. Its message names the key by id, never a secret.
 */
export class SecretUnavailableError extends Error {
  override name = "SecretUnavailableError";
}

/**
 * Sealed form, version 1: `hqs1:<key id>:<base64url of IV (12 bytes), ciphertext, GCM tag (16 bytes)>`.
 * Plain secrets start with "whsec_" or "whsk_", so the two cannot be confused.
 */
export const SEALED_PREFIX = "hqs1:";
const PLAIN_PREFIXES = ["whsec_", "whsk_"] as const;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Opened secrets kept, by stored form: a webhook signs every attempt with the same one. */
const CACHE_LIMIT = 10_000;

export const isSealed = (stored: string): boolean => stored.startsWith(SEALED_PREFIX);
export const isPlain = (stored: string): boolean => PLAIN_PREFIXES.some((p) => stored.startsWith(p));

/** The id of the key a sealed form was sealed with; undefined for any other form. */
export function sealedKeyId(stored: string): string | undefined {
  if (!isSealed(stored)) return undefined;
  const end = stored.indexOf(":", SEALED_PREFIX.length);
  return end < 0 ? undefined : stored.slice(SEALED_PREFIX.length, end);
}

/**
 * What the ciphertext is bound to: its purpose, the format's version and the
 * key id. A sealed form of anything else, or one whose key id was edited,
 * does not open.
 */
const aad = (keyId: string) => Buffer.from(`httpqueue webhook signing secret\0${SEALED_PREFIX}${keyId}`);

/** Secrets stored as they are (no SECRETS_KEY); a sealed form cannot be opened. */
export const plaintextSecrets: SecretCipher = {
  seal: (secret) => secret,
  open: (stored) => {
    if (isSealed(stored)) {
      throw new SecretUnavailableError(
        `the signing secret cannot be opened: it is sealed with key ${sealedKeyId(stored) ?? "?"} and SECRETS_KEY is not set`,
      );
    }
    return stored;
  },
};

/**
 * AES-256-GCM with a random IV per seal, under the ring's first key; opens
 * forms sealed with any key of the ring, and plain secrets (written by a
 * server without SECRETS_KEY, until sealed at the next start or by `rekey`).
 */
export function createSecretCipher(keys: KeyRing): SecretCipher & { keys: KeyRing } {
  const opened = new Map<string, string>();
  return {
    keys,
    seal(secret) {
      if (secret === "") return "";
      const { id, key } = keys.current;
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, iv).setAAD(aad(id));
      const body = Buffer.concat([iv, cipher.update(secret, "utf8"), cipher.final(), cipher.getAuthTag()]);
      return `${SEALED_PREFIX}${id}:${body.toString("base64url")}`;
    },
    open(stored) {
      if (!isSealed(stored)) {
        if (stored === "" || isPlain(stored)) return stored;
        throw new SecretUnavailableError(
          "the signing secret cannot be opened: its stored form is not one this server knows",
        );
      }
      const cached = opened.get(stored);
      if (cached !== undefined) return cached;
      const secret = openSealed(keys, stored);
      if (opened.size >= CACHE_LIMIT) opened.clear();
      opened.set(stored, secret);
      return secret;
    },
  };
}

function openSealed(keys: KeyRing, stored: string): string {
  const id = sealedKeyId(stored);
  const found = id === undefined ? undefined : keys.find(id);
  if (id === undefined || found === undefined) {
    throw new SecretUnavailableError(
      `the signing secret cannot be opened: it is sealed with key ${id ?? "?"}, which SECRETS_KEY does not hold (it holds ${keys.ids.join(", ")})`,
    );
  }
  const body = Buffer.from(stored.slice(SEALED_PREFIX.length + id.length + 1), "base64url");
  if (body.length < IV_BYTES + TAG_BYTES) {
    throw new SecretUnavailableError(`the signing secret cannot be opened: its sealed form (key ${id}) is truncated`);
  }
  try {
    const decipher = createDecipheriv("aes-256-gcm", found.key, body.subarray(0, IV_BYTES))
      .setAAD(aad(id))
      .setAuthTag(body.subarray(body.length - TAG_BYTES));
    return Buffer.concat([
      decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)),
      decipher.final(),
    ]).toString("utf8");
  } catch (err) {
    throw new SecretUnavailableError(
      `the signing secret cannot be opened: its sealed form (key ${id}) does not authenticate (damaged, or not sealed by httpqueue)`,
      { cause: err },
    );
  }
}
