import { and, eq, isNull, lte, sql, type SQL } from "drizzle-orm";
import type { Db } from "./client.js";
import type { AnyPgColumn } from "drizzle-orm/pg-core";
import { webhookRegistrations, type SignatureSchemeValue } from "./schema.js";

// A webhook signs with its current secret, and during a rotation's overlap
// with the previous one too (previous_signing_secret until
// previous_secret_expires_at). Secrets are stored sealed (secrets/cipher.ts):
// these statements move stored forms between columns and never open them.

const w = webhookRegistrations;
const live = (id: string) => and(eq(w.id, id), isNull(w.deletedAt));

/** A webhook's stored secrets (a previous one may have expired: see previousSecretExpiresAt). */
export interface StoredSecrets {
  signatureScheme: SignatureSchemeValue;
  signingSecret: string;
  previousSigningSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

/** SQL: the end of an overlap of `seconds` from now. */
const overlapEnd = (seconds: number) => sql`now() + ${seconds}::integer * interval '1 second'`;

/**
 * SQL SET values that make `sealed` the current secret: the current one
 * becomes the previous for `overlapSeconds` (0: none is kept). A previous
 * secret still signing is dropped: at most two sign at a time. In an UPDATE,
 * every value is computed from the row as it was.
 */
function rotation(sealed: SQL, overlapSeconds: number) {
  return {
    signingSecret: sealed,
    previousSigningSecret: overlapSeconds > 0 ? sql`${w.signingSecret}` : null,
    previousSecretExpiresAt: overlapSeconds > 0 ? overlapEnd(overlapSeconds) : null,
    updatedAt: sql`now()`,
  };
}

export interface RotateOptions {
  /** Sealed new secrets, one per scheme: the webhook's scheme picks one. */
  sealed: Record<SignatureSchemeValue, string>;
  overlapSeconds: number;
  /** Rotate only a webhook of this scheme (the caller brought a secret of it). */
  scheme?: SignatureSchemeValue | undefined;
}

/**
 * Rotates a webhook's signing secret in one statement: its row lock orders
 * concurrent rotations, the later one seeing the earlier one's secret as the
 * current one, so that two rotations leave a consistent pair. Returns the
 * secrets as stored now; undefined when there is no such registered webhook
 * (or, with `scheme`, none of that scheme).
 */
export async function rotateSigningSecret(
  db: Db,
  id: string,
  options: RotateOptions,
): Promise<StoredSecrets | undefined> {
  const { sealed } = options;
  const [row] = await db
    .update(w)
    .set(
      rotation(
        sql`case ${w.signatureScheme} when 'ed25519' then ${sealed.ed25519}::text else ${sealed["hmac-sha256"]}::text end`,
        options.overlapSeconds,
      ),
    )
    .where(and(live(id), options.scheme === undefined ? undefined : eq(w.signatureScheme, options.scheme)))
    .returning(STORED);
  return row;
}

/**
 * The SET values of UpdateWebhook for a change of scheme: a webhook of
 * another scheme gets `sealed` (a secret of `scheme`) as in a rotation of
 * `overlapSeconds`; one of that scheme already keeps its secrets.
 */
export function schemeChange(scheme: SignatureSchemeValue, sealed: string, overlapSeconds: number) {
  const rotated = rotation(sql`${sealed}::text`, overlapSeconds);
  const unlessSame = (column: AnyPgColumn, changed: SQL | null) =>
    sql`case when ${w.signatureScheme} = ${scheme} then ${column} else ${changed} end`;
  return {
    signatureScheme: scheme,
    signingSecret: unlessSame(w.signingSecret, rotated.signingSecret),
    previousSigningSecret: unlessSame(w.previousSigningSecret, rotated.previousSigningSecret),
    previousSecretExpiresAt: unlessSame(w.previousSecretExpiresAt, rotated.previousSecretExpiresAt),
  };
}

const STORED = {
  signatureScheme: w.signatureScheme,
  signingSecret: w.signingSecret,
  previousSigningSecret: w.previousSigningSecret,
  previousSecretExpiresAt: w.previousSecretExpiresAt,
};

/** A webhook's stored secrets; undefined when there is no such registered webhook. */
export async function findSigningSecrets(db: Db, id: string): Promise<StoredSecrets | undefined> {
  const [row] = await db.select(STORED).from(w).where(live(id));
  return row;
}

/**
 * Removes previous secrets whose overlap has ended (they no longer sign
 * anything): they are not kept in the database longer than needed. Returns
 * how many were removed.
 */
export async function clearExpiredSecrets(db: Db): Promise<number> {
  const rows = await db
    .update(w)
    .set({ previousSigningSecret: null, previousSecretExpiresAt: null })
    .where(lte(w.previousSecretExpiresAt, sql`now()`))
    .returning({ id: w.id });
  return rows.length;
}
