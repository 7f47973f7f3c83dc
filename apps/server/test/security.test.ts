import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, createClient, HttpQueueError, type HttpQueueClient } from "@httpqueue/sdk";
import { createTestCertificates, type TestCertificates } from "@httpqueue/testkit";
import { credentials } from "@grpc/grpc-js";
import { grpcHealthV1, grpcReflectionV1 } from "@httpqueue/proto";
import { runServerToExit, startTestServer, type TestServer } from "./helpers/server.js";

const TOKEN_A = "token-a-0123456789abcdef";
const TOKEN_B = "token-b-fedcba9876543210";

async function rejectsWithCode(call: Promise<unknown>, code: Code, details?: RegExp) {
  await assert.rejects(call, (err: unknown) => {
    assert.ok(err instanceof HttpQueueError, String(err));
    assert.equal(err.codeName, Code[code], err.message);
    if (details) assert.match(err.details, details);
    return true;
  });
}

/** grpc.health.v1 Check, with no token. */
function healthCheck(address: string, creds = credentials.createInsecure()): Promise<number> {
  const client = new grpcHealthV1.HealthClient(address, creds);
  return new Promise((resolve, reject) => {
    client.check({ service: "" }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res.status);
    });
  });
}

/** grpc.reflection.v1 ListServices, with no token. */
function listServicesByReflection(address: string): Promise<string[]> {
  const client = new grpcReflectionV1.ServerReflectionClient(address, credentials.createInsecure());
  const call = client.serverReflectionInfo();
  return new Promise((resolve, reject) => {
    call.on("data", (res: grpcReflectionV1.ServerReflectionResponse) => {
      call.end();
      client.close();
      const answer = res.messageResponse;
      if (answer?.$case === "listServicesResponse") resolve(answer.value.service.map((s) => s.name));
      else reject(new Error(`unexpected reflection answer: ${JSON.stringify(answer)}`));
    });
    call.on("error", reject);
    call.write({ host: "", messageRequest: { $case: "listServices", value: "" } });
  });
}

describe("API tokens", () => {
  let server: TestServer;
  const lines: string[] = [];
  const clients: HttpQueueClient[] = [];
  const client = (token?: string) => {
    const c = createClient({ address: server.app.address, token });
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await startTestServer({ API_TOKENS: `${TOKEN_A}, ${TOKEN_B}`, LOG_LEVEL: "info" }, undefined, {
      write: (line) => lines.push(line),
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  it("refuses calls without a token, or with a wrong or malformed one", async () => {
    await rejectsWithCode(client().listWebhooks({}), Code.UNAUTHENTICATED, /missing credentials.*Bearer/);
    await rejectsWithCode(client("not-the-token-at-all").listWebhooks({}), Code.UNAUTHENTICATED, /invalid API token/);
    await rejectsWithCode(
      client(`${TOKEN_A}x`).pushEvent({ namespace: "n", event: "e", payload: "{}" }),
      Code.UNAUTHENTICATED,
    );
    // A refused call does nothing.
    const [row] = await server.db.sql<{ n: number }[]>`select count(*)::int as n from event_records`;
    assert.equal(row?.n, 0);
  });

  it("accepts every configured token", async () => {
    for (const token of [TOKEN_A, TOKEN_B]) {
      const { webhooks } = await client(token).listWebhooks({});
      assert.ok(Array.isArray(webhooks));
    }
  });

  it("leaves health checks and reflection open", async () => {
    assert.equal(await healthCheck(server.app.address), grpcHealthV1.HealthCheckResponse_ServingStatus.SERVING);
    const services = await listServicesByReflection(server.app.address);
    assert.ok(services.includes("httpqueue.v1.WebhookService"), services.join(", "));
  });

  it("never logs a token", () => {
    const log = lines.join("");
    assert.match(log, /rpc refused/);
    for (const secret of [TOKEN_A, TOKEN_B, "not-the-token-at-all"]) assert.ok(!log.includes(secret));
  });
});

describe("API tokens from a file, and bad token settings", () => {
  let certs: TestCertificates;
  before(() => {
    certs = createTestCertificates(); // only for its temporary folder
  });
  after(() => {
    certs.remove();
  });

  it("reads one token per line, skipping comments", async () => {
    const file = join(certs.dir, "tokens");
    writeFileSync(file, `# deploy bot\n${TOKEN_A}\n\n# ci\n${TOKEN_B}\n`);
    const server = await startTestServer({ API_TOKENS_FILE: file });
    const c = createClient({ address: server.app.address, token: TOKEN_B });
    try {
      await c.listWebhooks({});
      await rejectsWithCode(createClient({ address: server.app.address }).listWebhooks({}), Code.UNAUTHENTICATED);
    } finally {
      c.close();
      await server.stop();
    }
  });

  it("refuses short tokens and unreadable files at start, without echoing tokens", async () => {
    const base = { DATABASE_URL: "postgres://127.0.0.1:1/none", GRPC_PORT: "0" };
    let { code, output } = await runServerToExit({ ...base, API_TOKENS: `${TOKEN_A},short-secret` });
    assert.equal(code, 2);
    assert.match(output, /token #2 must be at least 16 characters/);
    assert.doesNotMatch(output, /short-secret|token-a/);
    ({ code, output } = await runServerToExit({ ...base, API_TOKENS_FILE: join(certs.dir, "missing") }));
    assert.equal(code, 2);
    assert.match(output, /API_TOKENS_FILE cannot be read .*ENOENT/);
  });
});

describe("TLS", () => {
  let certs: TestCertificates;
  before(() => {
    certs = createTestCertificates();
  });
  after(() => {
    certs.remove();
  });

  it("serves gRPC over TLS to clients that trust its CA", async () => {
    const server = await startTestServer({ TLS_CERT_FILE: certs.serverCertFile, TLS_KEY_FILE: certs.serverKeyFile });
    const trusting = createClient({
      address: server.app.address,
      tls: { ca: certs.read(certs.caFile) },
      deadlineMs: 5000,
    });
    const plaintext = createClient({ address: server.app.address, deadlineMs: 2000 });
    const wrongCa = createClient({
      address: server.app.address,
      tls: { ca: certs.read(certs.otherCaFile) },
      deadlineMs: 2000,
    });
    try {
      await trusting.pushEvent({ namespace: "tls", event: "e", payload: "{}" });
      await rejectsWithCode(plaintext.pushEvent({ namespace: "tls", event: "e", payload: "{}" }), Code.UNAVAILABLE);
      await rejectsWithCode(wrongCa.pushEvent({ namespace: "tls", event: "e", payload: "{}" }), Code.UNAVAILABLE);
    } finally {
      for (const c of [trusting, plaintext, wrongCa]) c.close();
      await server.stop();
    }
  });

  it("with TLS_CLIENT_CA_FILE, requires a client certificate signed by that CA", async () => {
    const server = await startTestServer({
      TLS_CERT_FILE: certs.serverCertFile,
      TLS_KEY_FILE: certs.serverKeyFile,
      TLS_CLIENT_CA_FILE: certs.caFile,
    });
    const ca = certs.read(certs.caFile);
    const withCert = createClient({
      address: server.app.address,
      tls: { ca, cert: certs.read(certs.clientCertFile), key: certs.read(certs.clientKeyFile) },
    });
    const withoutCert = createClient({ address: server.app.address, tls: { ca }, deadlineMs: 2000 });
    const stranger = createClient({
      address: server.app.address,
      tls: { ca, cert: certs.read(certs.otherClientCertFile), key: certs.read(certs.otherClientKeyFile) },
      deadlineMs: 2000,
    });
    try {
      await withCert.listWebhooks({});
      await rejectsWithCode(withoutCert.listWebhooks({}), Code.UNAVAILABLE);
      await rejectsWithCode(stranger.listWebhooks({}), Code.UNAVAILABLE);
    } finally {
      for (const c of [withCert, withoutCert, stranger]) c.close();
      await server.stop();
    }
  });

  it("refuses incomplete or mismatched TLS settings at start", async () => {
    const base = { DATABASE_URL: "postgres://127.0.0.1:1/none", GRPC_PORT: "0" };
    const cases: [Record<string, string>, RegExp][] = [
      [{ TLS_CERT_FILE: certs.serverCertFile }, /TLS_CERT_FILE and TLS_KEY_FILE must be set together/],
      [{ TLS_CLIENT_CA_FILE: certs.caFile }, /TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE/],
      [
        { TLS_CERT_FILE: certs.serverCertFile, TLS_KEY_FILE: certs.clientKeyFile },
        /TLS_CERT_FILE\/TLS_KEY_FILE: .*key values mismatch/i,
      ],
      [
        { TLS_CERT_FILE: join(certs.dir, "nope.pem"), TLS_KEY_FILE: certs.serverKeyFile },
        /TLS_CERT_FILE cannot be read/,
      ],
    ];
    for (const [env, message] of cases) {
      const { code, output } = await runServerToExit({ ...base, ...env });
      assert.equal(code, 2, output);
      assert.match(output, message);
      assert.doesNotMatch(output, /BEGIN (RSA )?PRIVATE KEY/, "no key material in messages");
    }
  });
});
