import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  Metadata,
  Server,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
} from "@grpc/grpc-js";
import { listenGrpc } from "@httpqueue/testkit";
import {
  DeliveryStatus,
  WebhookServiceService,
  type WatchDeliveriesRequest,
  type WatchDeliveriesResponse,
  type WebhookServiceServer,
} from "@httpqueue/sdk";
import { closedPort, runCli } from "./helpers.js";

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

const COMMANDS = [
  [],
  ["webhooks"],
  ["webhooks", "register"],
  ["webhooks", "list"],
  ["webhooks", "get"],
  ["webhooks", "update"],
  ["webhooks", "unregister"],
  ["events"],
  ["events", "push"],
  ["events", "get"],
  ["events", "list"],
  ["status"],
  ["attempts"],
  ["attempts", "list"],
  ["deliveries"],
  ["deliveries", "resend"],
  ["webhooks", "recover"],
  ["webhooks", "replay"],
  ["tail"],
];

describe("webhookctl usage", () => {
  it("has --help with an example on every command", async () => {
    for (const command of COMMANDS) {
      const result = await runCli([...command, "--help"]);
      const name = ["webhookctl", ...command].join(" ");
      assert.equal(result.code, 0, `${name} --help: ${result.stderr}`);
      assert.equal(result.stderr, "");
      assert.ok(result.stdout.startsWith(`Usage: ${name}`), `${name}: ${result.stdout}`);
      assert.match(result.stdout, /\nExamples:\n {2}\$ webhookctl /, `${name} has an example`);
      if (command.length > 0)
        assert.match(
          result.stdout,
          /\nGlobal Options:\n(?: {2}.*\n)*? {2}--addr <host:port>/,
          `${name}: ${result.stdout}`,
        );
    }
    const viaHelp = await runCli(["webhooks", "help", "register"]);
    assert.equal(viaHelp.code, 0);
    assert.ok(viaHelp.stdout.startsWith("Usage: webhookctl webhooks register"));
  });

  it("prints its version", async () => {
    assert.deepEqual(await runCli(["--version"]), { code: 0, stdout: `${version}\n`, stderr: "" });
  });

  it("exits 2 on unknown commands and options, with a hint to --help", async () => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /^error: unknown command 'frobnicate'\n\(Run 'webhookctl --help' for usage\.\)\n$/],
      [
        ["webhooks", "lst"],
        /^error: unknown command 'lst'\n\(Did you mean one of list, ls\?\)\n\(Run 'webhookctl webhooks --help'/,
      ],
      [["webhooks", "list", "--bogus"], /^error: unknown option '--bogus'\n\(Run 'webhookctl webhooks list --help'/],
      [["--bogus", "webhooks", "list"], /^error: unknown option '--bogus'/],
      [["webhooks", "list", "--timeout", "30"], /argument '30' is invalid\. Give a unit, e\.g\. 30s or 30ms/],
      [["webhooks", "list", "--timeout", "-1s"], /--timeout <duration>/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, message);
    }
    const bare = await runCli([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /^Usage: webhookctl/, "no command: the usage, on stderr");
    const badEnv = await runCli(["webhooks", "list"], { env: { WEBHOOKCTL_TIMEOUT: "forever" } });
    assert.equal(badEnv.code, 2);
    assert.match(badEnv.stderr, /from env 'WEBHOOKCTL_TIMEOUT' is invalid/);
  });

  it("exits 2 on TLS flags that do not fit together or files it cannot read", async () => {
    const port = await closedPort();
    const noKey = await runCli(["webhooks", "list", "--addr", `127.0.0.1:${port}`, "--cert", "/etc/hostname"]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /^error: --cert and --key go together/);
    const noCa = await runCli(["webhooks", "list", "--addr", `127.0.0.1:${port}`, "--ca", "/nonexistent/ca.pem"]);
    assert.equal(noCa.code, 2);
    assert.match(noCa.stderr, /^error: cannot read the --ca file \/nonexistent\/ca\.pem \(ENOENT\)/);
  });

  it("says in one line, without a stack, that a server cannot be reached", async () => {
    const port = await closedPort();
    for (const extra of [[], ["--json"]]) {
      const result = await runCli(["webhooks", "list", ...extra], { env: { WEBHOOKCTL_ADDR: `127.0.0.1:${port}` } });
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "");
      assert.match(
        result.stderr,
        new RegExp(
          `^error: cannot reach httpqueue at 127\\.0\\.0\\.1:${port} \\(UNAVAILABLE: [^\\n]*ECONNREFUSED[^\\n]*\\)\\n$`,
        ),
      );
    }
    const unresolvable = await runCli(["status", "--event", "x", "--addr", "nohost.invalid:50051"]);
    assert.equal(unresolvable.code, 1);
    assert.equal(
      unresolvable.stderr,
      "error: cannot reach httpqueue at nohost.invalid:50051 (UNAVAILABLE: the host name does not resolve)\n",
    );
  });

  it("takes the address from --addr, before or after the command, over WEBHOOKCTL_ADDR", async () => {
    const [fromEnv, fromFlag] = [await closedPort(), await closedPort()];
    const env = { WEBHOOKCTL_ADDR: `127.0.0.1:${fromEnv}` };
    assert.match((await runCli(["webhooks", "list"], { env })).stderr, new RegExp(`at 127\\.0\\.0\\.1:${fromEnv} `));
    for (const args of [
      ["--addr", `127.0.0.1:${fromFlag}`, "webhooks", "list"],
      ["webhooks", "--addr", `127.0.0.1:${fromFlag}`, "list"],
      ["webhooks", "list", "--addr", `127.0.0.1:${fromFlag}`],
    ]) {
      const { stderr } = await runCli(args, { env });
      assert.match(stderr, new RegExp(`at 127\\.0\\.0\\.1:${fromFlag} `), args.join(" "));
    }
    const { stderr } = await runCli(["webhooks", "list"]);
    assert.match(stderr, /at 127\.0\.0\.1:50051 /, "the default address");
  });
});

/**
 * A real gRPC server standing in for a deployment that requires a token (and
 * one whose database is down): the exit codes and messages of webhookctl
 * for answers the test server in this repository does not give.
 */
describe("webhookctl against a server that requires a token", () => {
  const TOKEN = "s3cret-t0ken-value";
  let server: Server;
  let address: string;
  const seen: (string | undefined)[] = [];

  before(async () => {
    server = new Server();
    const refuse = (_call: unknown, callback: sendUnaryData<never>) => {
      callback({ code: status.UNIMPLEMENTED, details: "not in this test" });
    };
    const handlers: WebhookServiceServer = {
      registerWebhook: refuse,
      updateWebhook: refuse,
      unregisterWebhook: refuse,
      rotateSecret: refuse,
      getSigningSecret: refuse,
      getWebhookStatus: refuse,
      listAttempts: refuse,
      getEvent: refuse,
      listEvents: refuse,
      resendDelivery: refuse,
      recoverWebhook: refuse,
      replayMissed: refuse,
      watchDeliveries(call: ServerWritableStream<WatchDeliveriesRequest, WatchDeliveriesResponse>) {
        // Live, one change, then ended as a watcher that fell behind.
        call.sendMetadata(new Metadata());
        call.write({
          deliveryId: "d1",
          webhookId: "w1",
          eventId: "e1",
          namespace: "user",
          event: "signup",
          status: DeliveryStatus.DELIVERY_STATUS_RETRYING,
          attemptCount: 1,
          errorMessage: "",
          changedAt: new Date("2026-11-28T12:00:01.234Z"),
        });
        call.emit("error", { code: status.RESOURCE_EXHAUSTED, details: "the watcher fell 1000 changes behind" });
      },
      pushEvent(_call, callback) {
        callback({ code: status.UNAVAILABLE, details: "the database is unavailable; try again later" });
      },
      listWebhooks(call: ServerUnaryCall<unknown, unknown>, callback) {
        const authorization = call.metadata.get("authorization")[0]?.toString();
        seen.push(authorization);
        // Never answers: a server too slow for the deadline.
        if (authorization === "Bearer hang") return;
        if (authorization !== `Bearer ${TOKEN}`) {
          callback({ code: status.UNAUTHENTICATED, details: "missing or invalid token", metadata: new Metadata() });
          return;
        }
        callback(null, { webhooks: [], nextPageToken: "" });
      },
    };
    server.addService(WebhookServiceService, handlers);
    address = await listenGrpc(server);
  });
  after(() => {
    server.forceShutdown();
  });

  it("exits 4 without a valid token, and never prints the token", async () => {
    const missing = await runCli(["webhooks", "list", "--addr", address]);
    assert.deepEqual(missing, {
      code: 4,
      stdout: "",
      stderr: "error: UNAUTHENTICATED: missing or invalid token (set --token or WEBHOOKCTL_TOKEN)\n",
    });
    const wrong = await runCli(["webhooks", "list", "--addr", address, "--token", "not-the-token", "--json"]);
    assert.equal(wrong.code, 4);
    assert.equal(wrong.stdout, "");
    assert.doesNotMatch(wrong.stderr, /not-the-token/);
    assert.equal(seen.at(-1), "Bearer not-the-token");
  });

  it("sends the token from WEBHOOKCTL_TOKEN or --token as a bearer token", async () => {
    const fromEnv = await runCli(["webhooks", "list", "--addr", address], { env: { WEBHOOKCTL_TOKEN: TOKEN } });
    assert.deepEqual(fromEnv, { code: 0, stdout: "No webhooks.\n", stderr: "" });
    const fromFlag = await runCli(["webhooks", "list", "--json", "--token", TOKEN, "--addr", address], {
      env: { WEBHOOKCTL_TOKEN: "overridden" },
    });
    assert.equal(fromFlag.code, 0, fromFlag.stderr);
    assert.deepEqual(JSON.parse(fromFlag.stdout), { webhooks: [], nextPageToken: "" });
    assert.equal(seen.at(-1), `Bearer ${TOKEN}`);
    const help = await runCli(["webhooks", "list", "--help"], { env: { WEBHOOKCTL_TOKEN: TOKEN } });
    assert.doesNotMatch(help.stdout + help.stderr, new RegExp(TOKEN));
  });

  it("gives up at the --timeout deadline", async () => {
    for (const args of [
      ["--timeout", "300ms", "webhooks", "list"],
      ["webhooks", "list", "--timeout", "300ms"],
    ]) {
      const result = await runCli([...args, "--addr", address], { env: { WEBHOOKCTL_TOKEN: "hang" } });
      assert.deepEqual(result, {
        code: 1,
        stdout: "",
        stderr: `error: DEADLINE_EXCEEDED: no answer from httpqueue at ${address} within 300ms (see --timeout)\n`,
      });
    }
  });

  it("tail prints what came before a server's error, then the error, and exits 1", async () => {
    const result = await runCli(["tail", "--addr", address, "--token", TOKEN]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      result.stdout,
      "2026-11-28T12:00:01.234Z  RETRYING     -       -  user/signup  webhook w1  delivery d1  attempt 1\n",
    );
    assert.match(result.stderr, /^Watching deliveries \(Ctrl-C to stop\)\.\n/);
    assert.match(result.stderr, /\nerror: RESOURCE_EXHAUSTED: the watcher fell 1000 changes behind\n$/);
    const json = await runCli(["tail", "--json", "--addr", address]);
    assert.equal(json.code, 1);
    assert.deepEqual(JSON.parse(json.stdout), {
      changedAt: "2026-11-28T12:00:01.234Z",
      deliveryId: "d1",
      webhookId: "w1",
      eventId: "e1",
      namespace: "user",
      event: "signup",
      status: "DELIVERY_STATUS_RETRYING",
      attemptCount: 1,
      attempt: null,
      nextAttemptAt: null,
      errorMessage: "",
    });
  });

  it("tells a server's own UNAVAILABLE from an unreachable server", async () => {
    const result = await runCli(["events", "push", "--namespace", "n", "--event", "e", "{}", "--addr", address]);
    assert.deepEqual(result, {
      code: 1,
      stdout: "",
      stderr: "error: UNAVAILABLE: the database is unavailable; try again later\n",
    });
  });
});
