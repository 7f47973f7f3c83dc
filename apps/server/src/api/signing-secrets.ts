import {
  SignatureScheme,
  type GetSigningSecretRequest,
  type GetSigningSecretResponse,
  type RotateSecretRequest,
  type RotateSecretResponse,
} from "@httpqueue/proto";
import { checkSigningSecret, generateSigningKey, verificationKeyOf } from "@httpqueue/sdk/signing";
import type { SignatureSchemeValue } from "../db/schema.js";
import { findSigningSecrets, rotateSigningSecret } from "../db/signing-secrets.js";
import { overlapEnd, SIGNATURE_SCHEME } from "./convert.js";
import type { ApiDeps } from "./deps.js";
import { invalidArgument, notFound } from "./errors.js";
import { checkId } from "./validation.js";

/** How long a rotated-out secret keeps signing when the caller does not say. */
export const DEFAULT_OVERLAP_SECONDS = 24 * 3600;
export const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;

const SCHEMES = new Map<SignatureScheme, SignatureSchemeValue>([
  [SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256, "hmac-sha256"],
  [SignatureScheme.SIGNATURE_SCHEME_ED25519, "ed25519"],
]);

/** A requested signature scheme; undefined when unspecified. */
export function checkSignatureScheme(field: string, value: SignatureScheme): SignatureSchemeValue | undefined {
  if (value === SignatureScheme.SIGNATURE_SCHEME_UNSPECIFIED) return undefined;
  const scheme = SCHEMES.get(value);
  if (scheme === undefined) {
    throw invalidArgument(field, "must be SIGNATURE_SCHEME_HMAC_SHA256 or SIGNATURE_SCHEME_ED25519");
  }
  return scheme;
}

/** Seconds the current secret keeps signing after a rotation: unset is the default, 0 none. */
export function checkOverlap(field: string, value: number | undefined): number {
  if (value === undefined) return DEFAULT_OVERLAP_SECONDS;
  if (!Number.isInteger(value) || value < 0 || value > MAX_OVERLAP_SECONDS) {
    throw invalidArgument(
      field,
      `must be 0 (the old secret stops at once) to ${MAX_OVERLAP_SECONDS} seconds (7 days); unset: ${DEFAULT_OVERLAP_SECONDS} (24 hours)`,
    );
  }
  return value;
}

/** A secret the caller brings, and its scheme. The message never repeats the value. */
function checkOwnSecret(field: string, value: string): SignatureSchemeValue {
  try {
    return checkSigningSecret(value);
  } catch (err) {
    if (err instanceof TypeError) throw invalidArgument(field, err.message);
    throw err;
  }
}

/** A new key of `scheme`: what is stored (sealed) and what the receiver verifies with. */
export function newSigningKey(deps: Pick<ApiDeps, "secrets">, scheme: SignatureSchemeValue) {
  const { secret, publicKey } = generateSigningKey(scheme);
  return { sealed: deps.secrets.seal(secret), shown: publicKey ?? secret };
}

export async function rotateSecret(deps: ApiDeps, req: RotateSecretRequest): Promise<RotateSecretResponse> {
  const id = checkId("webhook_id", req.webhookId);
  const overlapSeconds = checkOverlap("overlap_seconds", req.overlapSeconds);
  const own = req.secret === "" ? undefined : { scheme: checkOwnSecret("secret", req.secret), secret: req.secret };
  // The statement picks the key of the webhook's scheme: one of each, unless the caller brought one.
  const secrets: Record<SignatureSchemeValue, string> = own
    ? { "hmac-sha256": own.secret, ed25519: own.secret }
    : { "hmac-sha256": generateSigningKey("hmac-sha256").secret, ed25519: generateSigningKey("ed25519").secret };
  const sealed: Record<SignatureSchemeValue, string> = {
    "hmac-sha256": deps.secrets.seal(secrets["hmac-sha256"]),
    ed25519: deps.secrets.seal(secrets.ed25519),
  };
  const row = await rotateSigningSecret(deps.db, id, { sealed, overlapSeconds, scheme: own?.scheme });
  if (!row) {
    const webhook = own && (await findSigningSecrets(deps.db, id));
    if (own && webhook) {
      throw invalidArgument(
        "secret",
        `is an ${own.scheme} secret, and webhook ${id} signs with ${webhook.signatureScheme}: give a secret of its scheme (or none)`,
      );
    }
    throw notFound(`webhook ${id} not found`);
  }
  return {
    signingSecret: verificationKeyOf(secrets[row.signatureScheme]),
    signatureScheme: SIGNATURE_SCHEME[row.signatureScheme],
    previousSecretExpiresAt: overlapEnd(row),
  };
}

export async function getSigningSecret(deps: ApiDeps, req: GetSigningSecretRequest): Promise<GetSigningSecretResponse> {
  const id = checkId("webhook_id", req.webhookId);
  const row = await findSigningSecrets(deps.db, id);
  if (!row) throw notFound(`webhook ${id} not found`);
  const previousEnd = overlapEnd(row);
  // A public key for an ed25519 private key (whsk_), the secret itself for HMAC.
  const shown = (stored: string) => verificationKeyOf(deps.secrets.open(stored));
  return {
    signingSecret: shown(row.signingSecret),
    signatureScheme: SIGNATURE_SCHEME[row.signatureScheme],
    previousSigningSecret:
      previousEnd !== undefined && row.previousSigningSecret !== null ? shown(row.previousSigningSecret) : "",
    previousSecretExpiresAt: previousEnd,
  };
}
