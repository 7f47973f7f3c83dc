import type { Command } from "commander";
import { SignatureScheme, signatureSchemeToJSON } from "@httpqueue/sdk";
import type { Context, Cli } from "../context.js";
import { UsageError } from "../errors.js";
import { formatTime, type Colors } from "../output/style.js";
import { details } from "../output/table.js";
import { parseOverlap } from "../parse.js";
import { readArgument } from "../payload.js";

interface RotateOptions {
  overlap?: number;
  secret?: string;
}

const iso = (date: Date | undefined) => date?.toISOString() ?? null;

/** What the receiver is given for a scheme: a shared secret, or a public key (the private key stays on the server). */
export function keyTitle(scheme: SignatureScheme): string {
  return scheme === SignatureScheme.SIGNATURE_SCHEME_ED25519 ? "Public key" : "Signing secret";
}

/** "HMAC-SHA256 (v1 signatures)", "ed25519 (v1a signatures)". */
export function schemeName(scheme: SignatureScheme): string {
  return scheme === SignatureScheme.SIGNATURE_SCHEME_ED25519
    ? "ed25519 (v1a signatures)"
    : "HMAC-SHA256 (v1 signatures)";
}

/** The line about a rotation's overlap: until when the old secret signs too. */
export function overlapNote(c: Colors, end: Date | undefined): string {
  return end
    ? `The previous secret signs each delivery too until ${c.bold(formatTime(end))}:\nreceivers may switch to the new one meanwhile.\n`
    : "The previous secret no longer signs anything.\n";
}

/** `webhooks rotate-secret` and `webhooks secret`: a webhook's signing secret. */
export function registerSecretCommands(webhooks: Command, cli: Cli): void {
  cli
    .command(
      webhooks,
      "rotate-secret <webhook-id>",
      "give a webhook a new signing secret, the old one signing too for a while",
    )
    .option(
      "--overlap <duration>",
      "how long the old secret keeps signing alongside the new one: 0 (it stops at once, e.g. it leaked) to 7d, as 30m, 24h, 7d or seconds (default: 24h)",
      parseOverlap,
    )
    .option(
      "--secret <secret>",
      "bring your own new secret instead of a generated one: @file to read it from a file, or - for stdin (kept out of shell history and the process list); whsec_ and 24 to 64 bytes in base64 for an HMAC webhook, a whsk_ key for an ed25519 one",
    )
    .addHelpText(
      "after",
      `
During the overlap every delivery carries two signatures in webhook-signature,
the new one first, so a receiver that knows either secret accepts it: give
receivers the new secret, then let the old one run out. The new secret (for
ed25519, the public key) is printed once here; 'webhooks secret' shows it again.

Examples:
  $ webhookctl webhooks rotate-secret 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b
  $ webhookctl webhooks rotate-secret 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --overlap 2h --json | jq -r .signingSecret
  $ webhookctl webhooks rotate-secret 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --overlap 0   (the old secret leaked)
  $ webhookctl webhooks rotate-secret 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --secret @new-secret.txt
  $ vault read -field=secret kv/hooks | webhookctl webhooks rotate-secret 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --secret -`,
    )
    .action(
      cli.action<RotateOptions>(async (ctx, o, [webhookId = ""]) => {
        const secret = o.secret === undefined ? undefined : await readSecret(ctx, o.secret);
        const res = await ctx.client.rotateSecret({ webhookId, overlapSeconds: o.overlap, secret });
        ctx.print(
          () =>
            `Rotated the signing secret of webhook ${webhookId}.\n\n` +
            `${ctx.c.bold(`New ${keyTitle(res.signatureScheme).toLowerCase()}`)} (store it with the receiver)\n  ${res.signingSecret}\n\n` +
            overlapNote(ctx.c, res.previousSecretExpiresAt),
          () => ({
            webhookId,
            signatureScheme: signatureSchemeToJSON(res.signatureScheme),
            signingSecret: res.signingSecret,
            previousSecretExpiresAt: iso(res.previousSecretExpiresAt),
          }),
        );
      }),
    );

  cli
    .command(webhooks, "secret <webhook-id>", "show what a webhook's receiver verifies deliveries with")
    .addHelpText(
      "after",
      `
Shows the signing secret (whsec_...) of an HMAC webhook, or the public key
(whpk_...) of an ed25519 one, and during a rotation's overlap the previous one
too, with when it stops signing. An ed25519 private key is never shown.

Examples:
  $ webhookctl webhooks secret 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b
  $ webhookctl webhooks secret 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --json | jq -r .signingSecret`,
    )
    .action(
      cli.action(async (ctx, _o, [webhookId = ""]) => {
        const res = await ctx.client.getSigningSecret({ webhookId });
        const fields: [string, string][] = [
          ["Scheme", schemeName(res.signatureScheme)],
          [keyTitle(res.signatureScheme), res.signingSecret],
        ];
        if (res.previousSigningSecret !== "") {
          fields.push(
            ["Previous", res.previousSigningSecret],
            ["Previous until", formatTime(res.previousSecretExpiresAt)],
          );
        }
        ctx.print(
          () => details(ctx.c, fields),
          () => ({
            webhookId,
            signatureScheme: signatureSchemeToJSON(res.signatureScheme),
            signingSecret: res.signingSecret,
            previousSigningSecret: res.previousSigningSecret,
            previousSecretExpiresAt: iso(res.previousSecretExpiresAt),
          }),
        );
      }),
    );
}

/**
 * The --secret value: read from a file (@file) or stdin (-), so that it stays
 * out of shell history and the process list, or as given. Surrounding
 * whitespace (a file's last newline) is dropped; the server checks the rest.
 */
async function readSecret(ctx: Context, value: string): Promise<string> {
  const text = (await readArgument(value, ctx.io.stdin, "secret")).text.trim();
  if (text === "")
    throw new UsageError(
      `the secret (${value === "-" ? "stdin" : value.startsWith("@") ? value : "--secret"}) is empty`,
    );
  return text;
}
