import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closedPort, ok, okJson, runCli, startServer, TIME, type Server } from "./helpers.js";

interface WebhookJson {
  id: string;
  namespace: string;
  event: string;
  filter: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  timeout: number;
  active: boolean;
  description: string;
  createdAt: string;
  updatedAt: string;
}

const MISSING_ID = "0190a0d4-0000-7000-8000-000000000000";

describe("webhookctl webhooks", () => {
  let server: Server;
  let env: Record<string, string>;
  const register = async (namespace: string, event: string, extra: string[] = []) =>
    okJson<{ webhookId: string; webhook: WebhookJson; signingSecret: string }>(
      ["webhooks", "register", "--namespace", namespace, "--event", event, "--url", "http://127.0.0.1:9/h", ...extra],
      { env },
    );

  before(async () => {
    server = await startServer();
    env = { WEBHOOKCTL_ADDR: server.address };
  });
  after(async () => {
    await server.stop();
  });

  it("register prints the webhook and its signing secret, once", async () => {
    const result = await runCli(
      [
        "webhooks",
        "register",
        "--namespace",
        "user",
        "--event",
        "signup",
        "--url",
        "https://example.test/hooks/signup",
        "--header",
        "X-Team: billing",
        "--header",
        "Authorization: Bearer abc",
        "--request-timeout",
        "12",
        "--description",
        "welcome mails",
      ],
      { env },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    const id = /^Registered webhook (\S+)$/m.exec(result.stdout)?.[1];
    assert.ok(id, result.stdout);
    assert.match(result.stdout, /^Namespace {4}user$/m);
    assert.match(result.stdout, /^URL {10}https:\/\/example\.test\/hooks\/signup$/m);
    assert.match(result.stdout, /^Headers {6}X-Team: billing\n {13}Authorization: Bearer abc$/m);
    assert.match(result.stdout, /^Timeout {6}12s$/m);
    assert.match(result.stdout, /^Active {7}yes$/m);
    assert.match(result.stdout, new RegExp(`^Created {6}${TIME.source}$`, "m"));
    assert.match(result.stdout, /^Signing {6}HMAC-SHA256 \(v1 signatures\)$/m);
    assert.match(result.stdout, /Signing secret \(store it with the receiver\)\n {2}whsec_\S+\n$/);

    const json = await register("user", "json", ["--inactive", "--method", "put"]);
    assert.match(json.signingSecret, /^whsec_/);
    assert.equal(json.webhook.id, json.webhookId);
    assert.deepEqual(
      { method: json.webhook.method, active: json.webhook.active, timeout: json.webhook.timeout },
      { method: "PUT", active: false, timeout: 30 },
    );
    assert.ok(!Number.isNaN(Date.parse(json.webhook.createdAt)));
  });

  it("list shows aligned columns, one page or all of them, per namespace", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await register("listing", `e${i}`)).webhookId);

    const page = await runCli(["webhooks", "list", "--namespace", "listing", "--limit", "2"], { env });
    assert.equal(page.code, 0, page.stderr);
    const lines = page.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 3);
    const header = lines[0]!;
    assert.match(header, /^ID\s+NAMESPACE\s+EVENT\s+FILTER\s+METHOD\s+URL\s+ACTIVE\s+CREATED$/);
    for (const [i, line] of lines.slice(1).entries()) {
      assert.ok(line.startsWith(ids[i]!), line);
      // Every column starts where its heading does.
      assert.equal(line.indexOf("listing"), header.indexOf("NAMESPACE"));
      assert.equal(line.indexOf(`e${i} `), header.indexOf("EVENT"));
      assert.equal(line.indexOf("- "), header.indexOf("FILTER"));
      assert.equal(line.indexOf("yes"), header.indexOf("ACTIVE"));
      assert.match(line.slice(header.indexOf("CREATED")), TIME);
    }
    const token = /add --page-token (\S+), or --all/.exec(page.stderr)?.[1];
    assert.ok(token, `a hint for the next page on stderr: ${page.stderr}`);

    const next = await okJson<{ webhooks: WebhookJson[]; nextPageToken: string }>(
      ["webhooks", "list", "--namespace", "listing", "--limit", "2", "--page-token", token],
      { env },
    );
    assert.deepEqual(
      next.webhooks.map((w) => w.id),
      ids.slice(2, 4),
    );
    assert.notEqual(next.nextPageToken, "");

    const all = await okJson<{ webhooks: WebhookJson[]; nextPageToken: string }>(
      ["webhooks", "list", "--namespace", "listing", "--limit", "2", "--all"],
      { env },
    );
    assert.deepEqual(
      all.webhooks.map((w) => w.id),
      ids,
    );
    assert.equal(all.nextPageToken, "");
    assert.deepEqual(Object.keys(all.webhooks[0]!), [
      "id",
      "namespace",
      "event",
      "filter",
      "url",
      "method",
      "headers",
      "timeout",
      "active",
      "description",
      "createdAt",
      "updatedAt",
      "retryPolicy",
      "rateLimitPerSecond",
      "maxInFlight",
      "ordering",
      "disabledReason",
      "disabledAt",
      "failingSince",
      "pacePerSecond",
      "pausedUntil",
      "signatureScheme",
      "previousSecretExpiresAt",
    ]);

    assert.equal(await ok(["webhooks", "list", "--namespace", "nobody-here"], { env }), "No webhooks.\n");
    const everywhere = await okJson<{ webhooks: WebhookJson[] }>(["webhooks", "ls", "--all"], { env });
    assert.ok(everywhere.webhooks.some((w) => w.namespace === "user"));
    assert.ok(everywhere.webhooks.some((w) => w.namespace === "listing"));
  });

  it("get shows the webhook with its delivery counts", async () => {
    const { webhookId } = await register("getting", "e", ["--description", "for get"]);
    const human = await ok(["webhooks", "get", webhookId], { env });
    assert.match(human, new RegExp(`^ID {11}${webhookId}$`, "m"));
    assert.match(human, /^Description {2}for get$/m);
    assert.match(human, /^Deliveries {3}none$/m);
    const json = await okJson<{ webhook: WebhookJson; counts: unknown[] }>(["webhooks", "get", webhookId], { env });
    assert.equal(json.webhook.id, webhookId);
    assert.deepEqual(json.counts, []);
  });

  it("update changes only what is given", async () => {
    const { webhookId } = await register("updating", "e", ["--header", "X-A: 1", "--description", "before"]);
    const human = await runCli(
      ["webhooks", "update", webhookId, "--url", "https://example.test/v2", "--request-timeout", "45", "--inactive"],
      { env },
    );
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`^Updated webhook ${webhookId}$`, "m"));
    assert.match(human.stdout, /^Active {7}no$/m);

    const { webhook } = await okJson<{ webhook: WebhookJson }>(["webhooks", "get", webhookId], { env });
    assert.deepEqual(
      {
        url: webhook.url,
        timeout: webhook.timeout,
        active: webhook.active,
        headers: webhook.headers,
        description: webhook.description,
      },
      { url: "https://example.test/v2", timeout: 45, active: false, headers: { "X-A": "1" }, description: "before" },
    );

    const replaced = await okJson<{ webhook: WebhookJson }>(
      ["webhooks", "update", webhookId, "--header", "X-B: 2", "--active", "--description", ""],
      { env },
    );
    assert.deepEqual(
      { headers: replaced.webhook.headers, active: replaced.webhook.active, description: replaced.webhook.description },
      { headers: { "X-B": "2" }, active: true, description: "" },
    );
    const cleared = await okJson<{ webhook: WebhookJson }>(["webhooks", "update", webhookId, "--clear-headers"], {
      env,
    });
    assert.deepEqual(cleared.webhook.headers, {});

    const nothing = await runCli(["webhooks", "update", webhookId], { env });
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /^error: nothing to update: give at least one of --url/);
    const both = await runCli(["webhooks", "update", webhookId, "--header", "X: 1", "--clear-headers"], { env });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /cannot be used with/);
  });

  it("register and update set the delivery policy, and get shows it", async () => {
    const { webhookId, webhook } = await register("policy", "e", [
      "--retry-schedule",
      "1s,10s,1m",
      "--max-attempts",
      "5",
      "--rate-limit",
      "50",
      "--max-in-flight",
      "8",
      "--ordered",
    ]);
    const policy = webhook as WebhookJson & Record<string, unknown>;
    assert.deepEqual(
      [policy.retryPolicy, policy.rateLimitPerSecond, policy.maxInFlight, policy.ordering, policy.disabledReason],
      [{ scheduleSeconds: [1, 10, 60], maxAttempts: 5 }, 50, 8, "ORDERING_BY_KEY", "DISABLED_REASON_UNSPECIFIED"],
    );
    const human = await ok(["webhooks", "get", webhookId], { env });
    assert.match(human, /^Retries {6}1s, 10s, 1m \(the last repeats\); 5 attempts$/m);
    assert.match(human, /^Rate limit {3}50\/s$/m);
    assert.match(human, /^In flight {4}at most 8 per server$/m);
    assert.match(human, /^Ordering {5}by ordering key$/m);

    // One part of the policy changes; the rest stays.
    const changed = await okJson<{ webhook: Record<string, unknown> }>(
      ["webhooks", "update", webhookId, "--max-attempts", "3", "--rate-limit", "0", "--unordered", "--inactive"],
      { env },
    );
    assert.deepEqual(
      [changed.webhook.retryPolicy, changed.webhook.rateLimitPerSecond, changed.webhook.ordering],
      [{ scheduleSeconds: [1, 10, 60], maxAttempts: 3 }, 0, "ORDERING_NONE"],
    );
    assert.equal(changed.webhook.disabledReason, "DISABLED_REASON_MANUAL");
    assert.match(await ok(["webhooks", "get", webhookId], { env }), /^Disabled {5}by hand, /m);
    const reset = await okJson<{ webhook: Record<string, unknown> }>(
      ["webhooks", "update", webhookId, "--default-retries", "--active"],
      { env },
    );
    assert.equal(reset.webhook.retryPolicy, null);
    assert.equal(reset.webhook.disabledReason, "DISABLED_REASON_UNSPECIFIED");

    const bad = await runCli(["webhooks", "update", webhookId, "--retry-schedule", "1s,fast"], { env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /"fast": use whole seconds such as 1s,10s,1m,1h/);
    const refused = await runCli(["webhooks", "update", webhookId, "--retry-schedule", "2d"], { env });
    assert.notEqual(refused.code, 0);
    const tooLong = await runCli(["webhooks", "update", webhookId, "--retry-schedule", "25h"], { env });
    assert.equal(tooLong.code, 1, tooLong.stderr);
    assert.match(tooLong.stderr, /retry_policy\.schedule_seconds\[0\]: must be between 1 and 86400 seconds/);
  });

  it("register takes an event pattern and a payload filter; get, list and update show and change them", async () => {
    const filter = '{"plan":"pro","country":["DE","FR"]}';
    const registered = await runCli(
      [
        ...["webhooks", "register", "--namespace", "patterns", "--event", "order.*"],
        ...["--url", "http://127.0.0.1:9/h", "--filter", filter],
      ],
      { env },
    );
    assert.equal(registered.code, 0, registered.stderr);
    const webhookId = /^Registered webhook (\S+)$/m.exec(registered.stdout)?.[1];
    assert.ok(webhookId, registered.stdout);
    assert.match(registered.stdout, /^Event {8}order\.\*$/m);
    // The server may keep the object in its own layout: compare what it means.
    const shown = /^Filter {7}(.+)$/m.exec(registered.stdout)?.[1];
    assert.ok(shown, registered.stdout);
    assert.deepEqual(JSON.parse(shown), JSON.parse(filter));

    const human = await ok(["webhooks", "get", webhookId], { env });
    assert.match(human, /^Event {8}order\.\*$/m);
    assert.deepEqual(JSON.parse(/^Filter {7}(.+)$/m.exec(human)?.[1] ?? "null"), JSON.parse(filter));
    const status = await ok(["status", "--webhook", webhookId], { env });
    assert.match(status, /^Events {6}patterns\/order\.\*$/m);
    assert.deepEqual(JSON.parse(/^Filter {6}(.+)$/m.exec(status)?.[1] ?? "null"), JSON.parse(filter));
    const { webhook } = await okJson<{ webhook: WebhookJson }>(["webhooks", "get", webhookId], { env });
    assert.equal(webhook.event, "order.*");
    assert.deepEqual(JSON.parse(webhook.filter), JSON.parse(filter));

    // Every event of the namespace, from a filter file.
    const dir = await mkdtemp(join(tmpdir(), "webhookctl-filter-"));
    try {
      const file = join(dir, "filter.json");
      await writeFile(file, '{\n  "tier": {"level": 2}\n}\n');
      const all = await register("patterns", "*", ["--filter", `@${file}`]);
      assert.equal(all.webhook.event, "*");
      assert.deepEqual(JSON.parse(all.webhook.filter), { tier: { level: 2 } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const plain = await register("patterns", "plain");
    assert.equal(plain.webhook.filter, "");
    assert.match(await ok(["webhooks", "get", plain.webhookId], { env }), /^Filter {7}none$/m);

    const list = await ok(["webhooks", "list", "--namespace", "patterns"], { env });
    const [header = "", first = "", second = "", third = ""] = list.trimEnd().split("\n");
    assert.equal(first.indexOf("order.*"), header.indexOf("EVENT"));
    assert.ok(first.slice(header.indexOf("FILTER")).startsWith('{"plan":"pro","country":'), first);
    assert.ok(second.slice(header.indexOf("FILTER")).startsWith('{"tier":{"level":2}}'), second);
    assert.ok(third.slice(header.indexOf("FILTER")).startsWith("- "), third);

    const replaced = await okJson<{ webhook: WebhookJson }>(
      ["webhooks", "update", webhookId, "--filter", '{"plan":"enterprise"}'],
      { env },
    );
    assert.deepEqual(JSON.parse(replaced.webhook.filter), { plan: "enterprise" });
    assert.equal(replaced.webhook.event, "order.*");
    const cleared = await runCli(["webhooks", "update", webhookId, "--clear-filter"], { env });
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.match(cleared.stdout, /^Filter {7}none$/m);
    const after = await okJson<{ webhook: WebhookJson }>(["webhooks", "get", webhookId], { env });
    assert.equal(after.webhook.filter, "");
    assert.equal(after.webhook.event, "order.*");
  });

  it("a filter that is not a JSON object exits 2, before calling the server", async () => {
    // Nothing listens there: a call would fail with exit 1 instead.
    const offline = { WEBHOOKCTL_ADDR: `127.0.0.1:${await closedPort()}` };
    const registerWith = (filter: string) => [
      ...["webhooks", "register", "--namespace", "u", "--event", "order.*", "--url", "http://x.test"],
      ...["--filter", filter],
    ];
    const cases: [string[], RegExp][] = [
      [registerWith('{"plan":'), /argument '\{"plan":' is invalid\. It is not valid JSON \(.+\): give a JSON object/],
      [
        registerWith('["DE","FR"]'),
        /It must be a JSON object, such as '\{"plan":"pro","country":\["DE","FR"\]\}', not an array\./,
      ],
      [registerWith("42"), /It must be a JSON object, .+, not a number\./],
      [registerWith("null"), /It must be a JSON object, .+, not null\./],
      [registerWith(""), /It is empty: give a JSON object/],
      [registerWith("@/nonexistent/filter.json"), /Cannot read the filter file \/nonexistent\/filter\.json \(ENOENT\)/],
      [["webhooks", "update", MISSING_ID, "--filter", "plan=pro"], /It is not valid JSON/],
      [["webhooks", "update", MISSING_ID, "--filter", "{}", "--clear-filter"], /cannot be used with/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args, { env: offline });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, message);
      assert.match(result.stderr, /\(Run 'webhookctl webhooks \w+ --help' for usage\.\)/);
    }
  });

  it("shows the server's message and exits 1 when it refuses a pattern or a filter", async () => {
    const registerWith = (event: string, extra: string[] = []) =>
      runCli(["webhooks", "register", "--namespace", "u", "--event", event, "--url", "http://x.test", ...extra], {
        env,
      });
    for (const event of ["a*b", "order*", "*.created"]) {
      const refused = await registerWith(event);
      assert.equal(refused.code, 1, `${event}: ${refused.stderr}`);
      assert.equal(refused.stdout, "");
      assert.match(refused.stderr, /^error: INVALID_ARGUMENT: event: .+\n$/);
    }
    // A JSON object, so webhookctl sends it; past 4096 bytes, so the server refuses it.
    const huge = JSON.stringify({ note: "x".repeat(4100) });
    const tooBig = await registerWith("e", ["--filter", huge]);
    assert.equal(tooBig.code, 1, tooBig.stderr);
    assert.match(tooBig.stderr, /^error: INVALID_ARGUMENT: filter: .+\n$/);
    const { webhookId } = await register("u", "e");
    const tooBigUpdate = await runCli(["webhooks", "update", webhookId, "--filter", huge], { env });
    assert.equal(tooBigUpdate.code, 1, tooBigUpdate.stderr);
    assert.match(tooBigUpdate.stderr, /^error: INVALID_ARGUMENT: filter: .+\n$/);
  });

  it("unregister removes the webhook; a second time is NOT_FOUND", async () => {
    const { webhookId } = await register("removing", "e");
    const human = await ok(["webhooks", "unregister", webhookId], { env });
    assert.equal(human, `Unregistered webhook ${webhookId}; cancelled 0 pending deliveries.\n`);
    const again = await runCli(["webhooks", "rm", webhookId, "--json"], { env });
    assert.equal(again.code, 1);
    assert.equal(again.stdout, "", "nothing on stdout in --json mode when the call fails");
    assert.equal(again.stderr, `error: NOT_FOUND: webhook ${webhookId} not found\n`);

    const { webhookId: other } = await register("removing", "f");
    assert.deepEqual(await okJson(["webhooks", "unregister", other], { env }), {
      webhookId: other,
      cancelledDeliveries: 0,
    });
  });

  it("shows the server's message and exits 1 when the server refuses", async () => {
    const badUrl = await runCli(["webhooks", "register", "--namespace", "u", "--event", "e", "--url", "ftp://x"], {
      env,
    });
    assert.equal(badUrl.code, 1);
    assert.equal(badUrl.stdout, "");
    assert.equal(badUrl.stderr, "error: INVALID_ARGUMENT: url: must be an absolute http or https URL\n");

    const badTimeout = await runCli(
      [
        "webhooks",
        "register",
        "--namespace",
        "u",
        "--event",
        "e",
        "--url",
        "http://x.test",
        "--request-timeout",
        "301",
      ],
      { env },
    );
    assert.equal(badTimeout.code, 1);
    assert.match(badTimeout.stderr, /^error: INVALID_ARGUMENT: timeout: must be between 1 and 300 seconds\n$/);

    const missing = await runCli(["webhooks", "get", MISSING_ID, "--json"], { env });
    assert.deepEqual(missing, {
      code: 1,
      stdout: "",
      stderr: `error: NOT_FOUND: webhook ${MISSING_ID} not found\n`,
    });
  });

  it("exits 2 on bad usage, before calling the server", async () => {
    const cases: [string[], RegExp][] = [
      [["webhooks", "register", "--namespace", "u", "--event", "e"], /required option '--url <url>' not specified/],
      [
        [
          "webhooks",
          "register",
          "--namespace",
          "u",
          "--event",
          "e",
          "--url",
          "http://x.test",
          "--request-timeout",
          "soon",
        ],
        /Use whole seconds, or a duration such as 30s/,
      ],
      [
        ["webhooks", "register", "--namespace", "u", "--event", "e", "--url", "http://x.test", "--header", "nocolon"],
        /Name: value/,
      ],
      [["webhooks", "list", "--limit", "0"], /whole number of at least 1/],
      [["webhooks", "list", "--all", "--page-token", "x"], /cannot be used with/],
      [["webhooks", "get"], /missing required argument 'webhook-id'/],
      [["webhooks", "get", MISSING_ID, "extra"], /too many arguments/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args, { env });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, message);
      assert.match(result.stderr, /\(Run 'webhookctl webhooks \w+ --help' for usage\.\)/);
    }
  });
});
