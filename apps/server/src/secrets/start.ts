import type { Sql } from "../db/client.js";
import type { Logger } from "../observability/logger.js";
import { createSecretCipher, plaintextSecrets, type SecretCipher } from "./cipher.js";
import type { KeyRing } from "./keys.js";
import { countSecrets, resealUntilSettled } from "./reseal.js";

/** The stored secrets do not fit this server's SECRETS_KEY: it must not start. */
export class SecretsKeyMismatchError extends Error {
  override name = "SecretsKeyMismatchError";
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * The cipher a server runs with, once the stored secrets agree with it.
 * With keys: refuses secrets sealed with a key it does not hold, then seals
 * every plain secret (safe while other servers do the same). Without:
 * refuses a database that holds sealed secrets.
 */
export async function prepareSecrets(options: {
  sql: Sql;
  keys: KeyRing | undefined;
  logger: Logger;
}): Promise<SecretCipher> {
  const { sql, keys, logger } = options;
  const stored = await countSecrets(sql);
  const sealedCount = [...stored.sealed.values()].reduce((a, b) => a + b, 0);
  if (keys === undefined) {
    if (sealedCount > 0) {
      throw new SecretsKeyMismatchError(
        `the database holds ${plural(sealedCount, "signing secret")} sealed with key ${[...stored.sealed.keys()].join(", ")}, and SECRETS_KEY is not set: start with SECRETS_KEY (or SECRETS_KEY_FILE) holding that key`,
      );
    }
    return plaintextSecrets;
  }
  const unknown = [...stored.sealed].filter(([id]) => keys.find(id) === undefined);
  if (unknown.length > 0) {
    const count = unknown.reduce((sum, [, n]) => sum + n, 0);
    throw new SecretsKeyMismatchError(
      `the database holds ${plural(count, "signing secret")} sealed with key ${unknown.map(([id]) => id).join(", ")}, which SECRETS_KEY does not hold (it holds ${keys.ids.join(", ")}): add that key to SECRETS_KEY, after the first, and run rekey before removing it`,
    );
  }
  const cipher = createSecretCipher(keys);
  if (stored.plain > 0) {
    const counts = await resealUntilSettled(sql, cipher, { kind: "plain" });
    logger.info(
      { sealed: counts.resealed, changedMeanwhile: counts.changed, keyId: keys.current.id },
      `sealed ${plural(counts.resealed, "plain signing secret")} with SECRETS_KEY (key ${keys.current.id})`,
    );
  }
  return cipher;
}
