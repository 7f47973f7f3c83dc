import { createHmac } from "node:crypto";

/** Bytes of an AES-256 key. */
export const KEY_BYTES = 32;

/** A key of SECRETS_KEY, known by an id derived from it (the id reveals nothing of the key). */
export interface SecretsKey {
  readonly id: string;
  readonly key: Buffer;
}

/**
 * The keys of SECRETS_KEY, the first one sealing, every one opening. The key
 * bytes are kept out of reach of logging and inspection: a Config logged by
 * mistake shows the ids alone.
 */
export class KeyRing {
  readonly #keys: readonly SecretsKey[];

  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw new Error("a key ring needs a key");
    const byId = new Map<string, SecretsKey>();
    for (const key of keys) {
      const id = keyId(key);
      if (!byId.has(id)) byId.set(id, { id, key: Buffer.from(key) });
    }
    this.#keys = [...byId.values()];
  }

  /** The key that seals. */
  get current(): SecretsKey {
    return this.#keys[0] as SecretsKey;
  }

  /** Every key that opens, by id. */
  find(id: string): SecretsKey | undefined {
    return this.#keys.find((k) => k.id === id);
  }

  get ids(): string[] {
    return this.#keys.map((k) => k.id);
  }

  toJSON(): { ids: string[] } {
    return { ids: this.ids };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `KeyRing(${this.ids.join(", ")})`;
  }
}

/**
 * The id a sealed secret names its key by: 12 hex characters of an HMAC keyed
 * by the key, so the same key always has the same id, and the id tells
 * nothing of the key.
 */
export function keyId(key: Buffer): string {
  return createHmac("sha256", key).update("httpqueue secrets key id").digest("hex").slice(0, 12);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Parses SECRETS_KEY (or its file): base64 keys of 32 bytes, separated by
 * commas or line breaks; blank entries and lines starting with # are
 * skipped. Returns the keys, or a problem per bad entry, naming it by
 * position and never quoting it.
 */
export function parseKeys(text: string): { keys: Buffer[]; problems: string[] } {
  const entries = text
    .split(/[,\r\n]/)
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "" && !entry.startsWith("#"));
  const keys: Buffer[] = [];
  const problems: string[] = [];
  for (const [i, entry] of entries.entries()) {
    const which = entries.length > 1 ? `key #${i + 1}` : "the key";
    if (!BASE64.test(entry) && !BASE64URL.test(entry)) {
      problems.push(`${which} is not base64 (make one with: openssl rand -base64 32)`);
      continue;
    }
    const key = Buffer.from(entry, BASE64.test(entry) ? "base64" : "base64url");
    if (key.length !== KEY_BYTES) {
      problems.push(
        `${which} must decode to ${KEY_BYTES} bytes, not ${key.length} (make one with: openssl rand -base64 32)`,
      );
      continue;
    }
    keys.push(key);
  }
  if (entries.length === 0) problems.push("holds no key");
  return { keys, problems };
}
