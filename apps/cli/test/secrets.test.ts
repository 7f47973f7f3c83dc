import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ok, okJson, runCli, startServer, TIME, type Server } from "./helpers.js";

interface SecretJson {
  webhookId: string;
  signatureScheme: string;
  signingSecret: string;
  previousSigningSecret: string;
  previousSecretExpiresAt: string | null;
}

interface RotationJson {
  webhookId: string;
  signatureScheme: string;
  signingSecret: string;
  previousSecretExpiresAt: string | null;
}

const HOUR = 3_600_000;

describe("webhookctl signing secrets", () => {
  let server: Server;
  let env: Record<string, string>;
  let dir: string;
  const register = async (namespace: string, extra: string[] = []) =>
    okJson<{ webhookId: string; signingSecret: string; webhook: { signatureScheme: string } }>(
      ["webhooks", "register", "--namespace", namespace, "--event", "e", "--url", "http://127.0.0.1:9/h", ...extra],
      { env },
    );
  const secretOf = (id: string) => okJson<SecretJson>(["webhooks", "secret", id], { env });

  before(async () => {
    server = await startServer();
    env = { WEBHOOKCTL_ADDR: server.address };
    dir = await mkdtemp(join(tmpdir(), "webhookctl-secrets-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await server.stop();
  });

  it("register --signature-scheme ed25519 prints the public key; secret shows it again", async () => {
    const human = await runCli(
      [
        "webhooks",
        "register",
        "--namespace",
        "keys",
        "--event",
        "e",
        "--url",
        "http://127.0.0.1:9/h",
        "--signature-scheme",
        "ed25519",
      ],
      { env },
    );
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^Signing {6}ed25519 \(v1a signatures\)$/m);
    const publicKey = /Public key \(store it with the receiver\)\n {2}(whpk_\S+)\n$/.exec(human.stdout)?.[1];
    assert.ok(publicKey, human.stdout);
    const id = /^Registered webhook (\S+)$/m.exec(human.stdout)?.[1] ?? "";

    assert.deepEqual(await secretOf(id), {
      webhookId: id,
      signatureScheme: "SIGNATURE_SCHEME_ED25519",
      signingSecret: publicKey,
      previousSigningSecret: "",
      previousSecretExpiresAt: null,
    });
    const shown = await ok(["webhooks", "secret", id], { env });
    assert.match(shown, /^Scheme {6}ed25519 \(v1a signatures\)$/m);
    assert.match(shown, new RegExp(`^Public key  ${publicKey.replace(/[+/]/g, "\\$&")}$`, "m"));
    assert.doesNotMatch(shown, /whsk_|Previous/);

    const json = await register("keys", ["--signature-scheme", "ed25519"]);
    assert.match(json.signingSecret, /^whpk_/);
    assert.equal(json.webhook.signatureScheme, "SIGNATURE_SCHEME_ED25519");
    assert.equal((await register("keys")).webhook.signatureScheme, "SIGNATURE_SCHEME_HMAC_SHA256");
  });

  it("rotate-secret prints the new secret and when the old one stops; secret and get show the overlap", async () => {
    const { webhookId, signingSecret: first } = await register("rotate");
    const at = Date.now();
    const rotated = await okJson<RotationJson>(["webhooks", "rotate-secret", webhookId, "--overlap", "2h"], { env });
    assert.equal(rotated.webhookId, webhookId);
    assert.equal(rotated.signatureScheme, "SIGNATURE_SCHEME_HMAC_SHA256");
    assert.match(rotated.signingSecret, /^whsec_/);
    assert.notEqual(rotated.signingSecret, first);
    const end = Date.parse(rotated.previousSecretExpiresAt ?? "");
    assert.ok(
      Math.abs(end - (at + 2 * HOUR)) < 60_000,
      `the old secret stops in 2h: ${rotated.previousSecretExpiresAt}`,
    );

    assert.deepEqual(await secretOf(webhookId), {
      webhookId,
      signatureScheme: "SIGNATURE_SCHEME_HMAC_SHA256",
      signingSecret: rotated.signingSecret,
      previousSigningSecret: first,
      previousSecretExpiresAt: rotated.previousSecretExpiresAt,
    });
    const shown = await ok(["webhooks", "secret", webhookId], { env });
    assert.match(shown, new RegExp(`^Previous {8}${first.replace(/[+/]/g, "\\$&")}$`, "m"));
    assert.match(shown, new RegExp(`^Previous until  ${TIME.source}$`, "m"));
    assert.match(
      await ok(["webhooks", "get", webhookId], { env }),
      /^Rotation {5}the previous secret signs too until in 2h/m,
    );

    const human = await ok(["webhooks", "rotate-secret", webhookId], { env });
    assert.match(human, /^New signing secret \(store it with the receiver\)\n {2}whsec_\S+$/m);
    assert.match(human, /The previous secret signs each delivery too until in 1d \(/);
    const now = await ok(["webhooks", "rotate-secret", webhookId, "--overlap", "0"], { env });
    assert.match(now, /The previous secret no longer signs anything\./);
    assert.equal((await secretOf(webhookId)).previousSigningSecret, "");
  });

  it("rotate-secret --secret takes the caller's secret from a file or stdin", async () => {
    const { webhookId } = await register("own");
    const fromFile = `whsec_${randomBytes(32).toString("base64")}`;
    const path = join(dir, "secret.txt");
    await writeFile(path, `${fromFile}\n`);
    const a = await okJson<RotationJson>(["webhooks", "rotate-secret", webhookId, "--secret", `@${path}`], { env });
    assert.equal(a.signingSecret, fromFile);

    const fromStdin = `whsec_${randomBytes(40).toString("base64")}`;
    const b = await okJson<RotationJson>(["webhooks", "rotate-secret", webhookId, "--secret", "-"], {
      env,
      input: `${fromStdin}\n`,
    });
    assert.equal(b.signingSecret, fromStdin);
    const secrets = await secretOf(webhookId);
    assert.deepEqual([secrets.signingSecret, secrets.previousSigningSecret], [fromStdin, fromFile]);
  });

  it("update --signature-scheme switches with a new key, printed once, the old secret signing for 24h", async () => {
    const { webhookId, signingSecret: hmac } = await register("switch");
    const result = await runCli(["webhooks", "update", webhookId, "--signature-scheme", "ed25519"], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Signing {6}ed25519 \(v1a signatures\)$/m);
    const publicKey = /^New public key \(store it with the receiver\)\n {2}(whpk_\S+)$/m.exec(result.stdout)?.[1];
    assert.ok(publicKey, result.stdout);
    assert.match(result.stdout, /The previous secret signs each delivery too until in 1d \(/);
    const secrets = await secretOf(webhookId);
    assert.deepEqual([secrets.signingSecret, secrets.previousSigningSecret], [publicKey, hmac]);

    const same = await okJson<{ signingSecret: string; previousSecretExpiresAt: string | null }>(
      ["webhooks", "update", webhookId, "--signature-scheme", "ed25519"],
      { env },
    );
    assert.deepEqual([same.signingSecret, same.previousSecretExpiresAt], ["", null], "the scheme it has: no new key");
  });

  it("refuses a bad overlap, scheme or secret file before calling the server; the server's refusal names the field", async () => {
    const { webhookId } = await register("bad");
    for (const args of [
      ["webhooks", "rotate-secret", webhookId, "--overlap", "8d"],
      ["webhooks", "rotate-secret", webhookId, "--overlap", "soon"],
      ["webhooks", "rotate-secret", webhookId, "--secret", `@${join(dir, "nowhere")}`],
      ["webhooks", "register", "--namespace", "n", "--event", "e", "--url", "http://x/h", "--signature-scheme", "rsa"],
      ["webhooks", "update", webhookId, "--signature-scheme", "hmac"],
    ]) {
      const result = await runCli(args, { env });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stdout, "");
    }
    assert.match(
      (await runCli(["webhooks", "rotate-secret", webhookId, "--overlap", "8d"], { env })).stderr,
      /at most 7d/,
    );

    const short = `whsec_${randomBytes(16).toString("base64")}`;
    const path = join(dir, "short.txt");
    await writeFile(path, short);
    const refused = await runCli(["webhooks", "rotate-secret", webhookId, "--secret", `@${path}`], { env });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /INVALID_ARGUMENT: secret: a whsec_ secret holds 24 to 64 bytes/);
    assert.ok(!refused.stderr.includes(short.slice(6, 18)), "the secret is not repeated");

    const missing = await runCli(["webhooks", "secret", "0190a0d4-0000-7000-8000-000000000000"], { env });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NOT_FOUND: webhook 0190a0d4-0000-7000-8000-000000000000 not found/);
  });

  it("help shows the options with examples", async () => {
    const rotate = await ok(["webhooks", "rotate-secret", "--help"]);
    for (const text of ["--overlap <duration>", "--secret <secret>", "Examples:", "--overlap 0", "--secret -"]) {
      assert.ok(rotate.includes(text), `rotate-secret --help mentions ${text}`);
    }
    assert.match(await ok(["webhooks", "secret", "--help"]), /Examples:/);
    assert.match(await ok(["webhooks", "register", "--help"]), /--signature-scheme <scheme>/);
  });
});
