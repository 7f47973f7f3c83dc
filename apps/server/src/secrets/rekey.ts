import { connect } from "../db/client.js";
import { createSecretCipher } from "./cipher.js";
import type { KeyRing } from "./keys.js";
import { countSecrets, RESEAL_BATCH, resealUntilSettled } from "./reseal.js";

export interface RekeyOptions {
  databaseUrl: string | undefined;
  keys: KeyRing | undefined;
  /** Lines for the operator. */
  out: (line: string) => void;
  batchSize?: number;
}

/**
 * `main.js rekey`: seals every signing secret (plain, or sealed with another
 * key) with the first key of SECRETS_KEY, a batch at a time, while servers
 * run. Idempotent. Returns the exit code: 0 once every secret is sealed with
 * the first key, 1 otherwise (a secret no key opens, or the database).
 */
export async function rekey(options: RekeyOptions): Promise<number> {
  const { databaseUrl, keys, out } = options;
  if (keys === undefined) {
    out("rekey: SECRETS_KEY (or SECRETS_KEY_FILE) is not set: nothing to seal with");
    return 1;
  }
  if (databaseUrl === undefined) {
    out(
      "rekey: DATABASE_URL is not set: rekey works on the database the servers use (the embedded one too, while it runs)",
    );
    return 1;
  }
  const sql = connect(databaseUrl, {
    max: 1,
    connect_timeout: 10,
    onnotice: () => undefined,
    connection: { application_name: "httpqueue-rekey" },
  });
  try {
    const cipher = createSecretCipher(keys);
    const keyId = keys.current.id;
    out(`rekey: sealing every signing secret with key ${keyId} (SECRETS_KEY holds ${keys.ids.join(", ")})`);
    const total = await resealUntilSettled(
      sql,
      cipher,
      { kind: "not-under", keyId },
      options.batchSize ?? RESEAL_BATCH,
    );
    const stored = await countSecrets(sql);
    const current = stored.sealed.get(keyId) ?? 0;
    const others = [...stored.sealed].filter(([id]) => id !== keyId);
    out(`rekey: ${total.resealed} re-sealed, ${current} now sealed with key ${keyId}`);
    if (stored.plain === 0 && others.length === 0) {
      out("rekey: done; keys after the first may now be removed from SECRETS_KEY");
      return 0;
    }
    if (total.unopenable > 0) out(`rekey: ${total.unopenable} cannot be opened with SECRETS_KEY's keys`);
    const left = others.map(([id, n]) => `${n} with key ${id}`);
    if (stored.plain > 0) left.unshift(`${stored.plain} plain`);
    out(
      `rekey: not done: ${left.join(", ")} remain (written meanwhile by a server whose first key is another, or not opened); keep their keys and run rekey again`,
    );
    return 1;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    out(
      `rekey: failed: ${err instanceof Error ? err.message : String(err)}${typeof code === "string" ? ` (${code})` : ""}`,
    );
    return 1;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
