import { createHash } from "node:crypto";
import type { Sql } from "../db/client.js";
import { isPlain, SEALED_PREFIX, type SecretCipher } from "./cipher.js";

// Rewriting stored signing secrets while servers run: at start (plain ones
// are sealed) and by `rekey` (everything is sealed again under the first
// key). Each batch is two short statements of their own; each row is written
// only if it still holds what was read (compare-and-set), so a secret
// rotated, or sealed by another server, meanwhile is never overwritten. The
// compare is by SHA-256 digest: a value read, which may be a plain secret,
// never goes back to PostgreSQL as a statement parameter (which
// log_statement or a slow-statement log would keep).

/** The columns that hold a signing secret, as stored ("" once unregistered; previous: null when none). */
const COLUMNS = ["signing_secret", "previous_signing_secret"] as const;
type Column = (typeof COLUMNS)[number];

export const RESEAL_BATCH = 500;

export interface ResealCounts {
  /** Sealed (again) and written. */
  resealed: number;
  /** Changed by someone else between the read and the write: left as they were. */
  changed: number;
  /** No key of this server opens them: left as they are. */
  unopenable: number;
}

/** What a pass rewrites: a plain secret ("plain"), or any secret not sealed with this key id. */
export type ResealTarget = { kind: "plain" } | { kind: "not-under"; keyId: string };

/** SQL condition: the column holds a secret the pass rewrites. */
function needs(sql: Sql, column: Column, target: ResealTarget) {
  const col = sql(column);
  if (target.kind === "plain") {
    return sql`(starts_with(${col}, 'whsec_') or starts_with(${col}, 'whsk_'))`;
  }
  return sql`(${col} <> '' and not starts_with(${col}, ${`${SEALED_PREFIX}${target.keyId}:`}))`;
}

/** The SHA-256 of a stored value's UTF-8 bytes, in hex: what the write compares with `sha256(convert_to(column, 'UTF8'))`. */
function digestOf(stored: string): string {
  return createHash("sha256").update(stored, "utf8").digest("hex");
}

/** Whether a stored value is one the pass rewrites (the same test as `needs`, in JS). */
function wanted(stored: string | null, target: ResealTarget): stored is string {
  if (stored === null || stored === "") return false;
  return target.kind === "plain" ? isPlain(stored) : !stored.startsWith(`${SEALED_PREFIX}${target.keyId}:`);
}

/**
 * One pass over every webhook, in id order, `batchSize` rows at a time:
 * each secret the target names is opened and sealed with `cipher`. Secrets
 * written by others during the pass may be left for the next one.
 */
export async function resealPass(
  sql: Sql,
  cipher: SecretCipher,
  target: ResealTarget,
  batchSize = RESEAL_BATCH,
): Promise<ResealCounts> {
  const counts: ResealCounts = { resealed: 0, changed: 0, unopenable: 0 };
  let after = "00000000-0000-0000-0000-000000000000";
  for (;;) {
    const rows = await sql<{ id: string; signing_secret: string; previous_signing_secret: string | null }[]>`
      select id, signing_secret, previous_signing_secret from webhook_registrations
      where id > ${after} and (${needs(sql, "signing_secret", target)} or ${needs(sql, "previous_signing_secret", target)})
      order by id limit ${batchSize}`;
    for (const column of COLUMNS) {
      const writes: { id: string; digest: string; sealed: string }[] = [];
      for (const row of rows) {
        const stored = row[column];
        if (!wanted(stored, target)) continue;
        let secret: string;
        try {
          secret = cipher.open(stored);
        } catch {
          counts.unopenable++;
          continue;
        }
        writes.push({ id: row.id, digest: digestOf(stored), sealed: cipher.seal(secret) });
      }
      if (writes.length === 0) continue;
      const written = await sql`
        update webhook_registrations w set ${sql(column)} = v.sealed
        from json_to_recordset(${JSON.stringify(writes)}::text::json) as v(id uuid, digest text, sealed text)
        where w.id = v.id and sha256(convert_to(w.${sql(column)}, 'UTF8')) = decode(v.digest, 'hex')`;
      counts.resealed += written.count;
      counts.changed += writes.length - written.count;
    }
    const last = rows.at(-1);
    if (last === undefined || rows.length < batchSize) return counts;
    after = last.id;
  }
}

/** Passes at most: another one runs only while rows changed during the last. */
const MAX_PASSES = 5;

/**
 * Passes of `resealPass` until one finds no row changed meanwhile (or
 * MAX_PASSES): a rotation between a pass's read and its write moves the
 * secret the pass read into previous_signing_secret as it was (plain, or
 * under another key), where only a further pass sees it.
 */
export async function resealUntilSettled(
  sql: Sql,
  cipher: SecretCipher,
  target: ResealTarget,
  batchSize = RESEAL_BATCH,
): Promise<ResealCounts> {
  const total: ResealCounts = { resealed: 0, changed: 0, unopenable: 0 };
  for (let pass = 1; pass <= MAX_PASSES; pass++) {
    const counts = await resealPass(sql, cipher, target, batchSize);
    total.resealed += counts.resealed;
    total.unopenable = counts.unopenable;
    total.changed = counts.changed;
    if (counts.changed === 0) break;
  }
  return total;
}

/** Stored signing secrets by form: plain, and sealed by key id. */
export interface StoredSecrets {
  plain: number;
  sealed: Map<string, number>;
}

/** Counts the stored secrets by form (one scan of the webhooks). */
export async function countSecrets(sql: Sql): Promise<StoredSecrets> {
  const rows = await sql<{ key_id: string | null; count: number }[]>`
    select case when starts_with(s, ${SEALED_PREFIX}) then split_part(s, ':', 2) end as key_id, count(*)::int as count
    from webhook_registrations, lateral (values (signing_secret), (previous_signing_secret)) as v(s)
    where s <> ''
    group by 1`;
  const out: StoredSecrets = { plain: 0, sealed: new Map() };
  for (const row of rows) {
    if (row.key_id === null) out.plain += row.count;
    else out.sealed.set(row.key_id, row.count);
  }
  return out;
}
