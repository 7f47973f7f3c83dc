/**
 * How signing secrets are kept in the database. Every secret written goes
 * through `seal`, every secret read through `open`: the stored form never
 * leaves the server, the plain form never reaches the database.
 */
export interface SecretCipher {
  /** The form to store for a secret ("whsec_…", "whsk_…"). */
  seal(secret: string): string;
  /** The secret of a stored form ("" stays ""). Throws when no key of the server opens it. */
  open(stored: string): string;
}

/** Secrets stored as they are (no SECRETS_KEY). */
export const plaintextSecrets: SecretCipher = {
  seal: (secret) => secret,
  open: (stored) => stored,
};
