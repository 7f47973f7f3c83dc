import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTestCertificates, type TestCertificates } from "@httpqueue/testkit";
import { runCli, startServer, type Server } from "./helpers.js";

/** webhookctl against a real server that requires a token and speaks TLS only. */
describe("webhookctl with tokens and TLS", () => {
  const TOKEN = "cli-token-0123456789abcdef";
  let certs: TestCertificates;
  let server: Server;
  let tls: string[];

  before(async () => {
    certs = createTestCertificates();
    server = await startServer({
      API_TOKENS: TOKEN,
      TLS_CERT_FILE: certs.serverCertFile,
      TLS_KEY_FILE: certs.serverKeyFile,
      // The guard as shipped, to see its warning at registration.
      ALLOW_PRIVATE_DESTINATIONS: "false",
    });
    tls = ["--addr", server.address, "--ca", certs.caFile];
  });
  after(async () => {
    await server.stop();
    certs.remove();
  });

  it("exits 4 without a token, naming what to set", async () => {
    const result = await runCli(["webhooks", "list", ...tls]);
    assert.equal(result.code, 4);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /^error: UNAUTHENTICATED: missing credentials.*\(set --token or WEBHOOKCTL_TOKEN\)\n$/);
    const wrong = await runCli(["webhooks", "list", ...tls], { env: { WEBHOOKCTL_TOKEN: "wrong-token-0123456789" } });
    assert.equal(wrong.code, 4);
    assert.match(wrong.stderr, /invalid API token/);
  });

  it("works with the token and the CA, and not without the CA", async () => {
    const ok = await runCli(["webhooks", "list", "--json", ...tls], { env: { WEBHOOKCTL_TOKEN: TOKEN } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { webhooks: [], nextPageToken: "" });
    const plaintext = await runCli(["webhooks", "list", "--addr", server.address, "--timeout", "2s"], {
      env: { WEBHOOKCTL_TOKEN: TOKEN },
    });
    assert.equal(plaintext.code, 1);
    assert.match(plaintext.stderr, /^error: /);
    assert.doesNotMatch(plaintext.stderr, /\n\s+at /, "no stack trace");
  });

  it("prints the server's warning about a URL deliveries would not reach", async () => {
    const result = await runCli(
      ["webhooks", "register", "--namespace", "n", "--event", "e", "--url", "http://127.0.0.1:9/hook", ...tls],
      { env: { WEBHOOKCTL_TOKEN: TOKEN } },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /^warning: deliveries to this URL would be refused now: 127\.0\.0\.1 is a loopback address/m,
    );
    const json = await runCli(
      ["webhooks", "register", "--namespace", "n", "--event", "e", "--url", "http://10.0.0.1:9/hook", "--json", ...tls],
      { env: { WEBHOOKCTL_TOKEN: TOKEN } },
    );
    assert.equal(json.code, 0, json.stderr);
    const body = JSON.parse(json.stdout) as { warnings: string[] };
    assert.match(body.warnings[0] ?? "", /10\.0\.0\.1 is a private network address/);
  });
});
