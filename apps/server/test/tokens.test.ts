import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, createClient, HttpQueueError, type HttpQueueClient } from "@httpqueue/sdk";
import { eventually, terminate, until } from "@httpqueue/testkit";
import { watchTokenFile } from "../src/api/token-file.js";
import { ConfigError, loadConfig } from "../src/config.js";
import { createLogger } from "../src/observability/logger.js";
import { securityWarnings } from "../src/observability/security-warnings.js";
import { TokenSet } from "../src/tokens.js";
import { parseMetrics } from "./helpers/http.js";
import { databaseAndReceivers, spawnServer, startTestServer, type TestServer } from "./helpers/server.js";

const TOKEN_A = "token-a-0123456789abcdef";
const TOKEN_B = "token-b-fedcba9876543210";
const TOKEN_C = "token-c-00112233445566778899";
const ENV_TOKEN = "token-env-aabbccddeeff0011";
const METRICS_TOKEN = "metrics-0123456789abcdef0123";

/** How long a change may take to be in use: seconds, not a restart. */
const WITHIN_MS = 10_000;

const fixture = databaseAndReceivers();
let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "httpqueue-tokens-"));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** An editor's save: a new file renamed over the old one. */
function saveByRename(file: string, content: string): void {
  writeFileSync(`${file}.tmp`, content);
  renameSync(`${file}.tmp`, file);
}

/** Resolves true when `token` is accepted, false when the call is refused as UNAUTHENTICATED. */
async function accepted(address: string, token: string | undefined): Promise<boolean> {
  const client = createClient({ address, token, deadlineMs: 5000 });
  try {
    await client.listWebhooks({});
    return true;
  } catch (err) {
    if (err instanceof HttpQueueError && err.codeName === Code[Code.UNAUTHENTICATED]) return false;
    throw err;
  } finally {
    client.close();
  }
}

/** Waits until `token` is accepted (true) or refused (false). */
function untilToken(address: string, token: string, expected: boolean, what: string): Promise<true> {
  return eventually(async () => ((await accepted(address, token)) === expected ? true : undefined), WITHIN_MS, what);
}

async function metricsOf(httpAddress: string, token?: string) {
  const res = await fetch(`http://${httpAddress}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  assert.equal(res.status, 200);
  const samples = parseMetrics(await res.text());
  return (name: string, labels: Record<string, string> = {}) =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

describe("API_TOKENS_FILE, read again while the server runs", () => {
  let server: TestServer;
  let file: string;
  const lines: string[] = [];
  const logged = () => lines.join("");

  before(async () => {
    file = join(dir, "api-tokens");
    writeFileSync(file, `# deploy bot\n${TOKEN_A}\n`);
    server = await startTestServer({ API_TOKENS: ENV_TOKEN, API_TOKENS_FILE: file, LOG_LEVEL: "info" }, fixture.db, {
      write: (line) => lines.push(line),
    });
  });
  after(async () => {
    await server.stop();
  });

  it("takes a token added to the file, without a restart", async () => {
    const address = server.app.address;
    assert.equal(await accepted(address, TOKEN_A), true);
    assert.equal(await accepted(address, TOKEN_B), false);
    writeFileSync(file, `# deploy bot\n${TOKEN_A}\n# ci\n${TOKEN_B}\n`);
    await untilToken(address, TOKEN_B, true, "the added token to be accepted");
    assert.equal(await accepted(address, TOKEN_A), true);
    assert.match(logged(), /API tokens reloaded from .*api-tokens: 3 in use \(1 added, 0 removed\)/);
  });

  it("refuses a token removed from the file (an editor's rename-on-save)", async () => {
    const address = server.app.address;
    // A client connected before the change: its next call is refused too.
    const connected = createClient({ address, token: TOKEN_A });
    await connected.listWebhooks({});
    saveByRename(file, `# ci\n${TOKEN_B}\n`);
    await untilToken(address, TOKEN_A, false, "the removed token to be refused");
    await assert.rejects(connected.listWebhooks({}), (err: unknown) => {
      assert.ok(err instanceof HttpQueueError);
      assert.equal(err.codeName, Code[Code.UNAUTHENTICATED]);
      return true;
    });
    connected.close();
    assert.equal(await accepted(address, TOKEN_B), true);
    assert.equal(await accepted(address, ENV_TOKEN), true, "API_TOKENS stay whatever the file says");
  });

  it("keeps the tokens in use when the file turns bad, unreadable or empty, and takes the next good one", async () => {
    const address = server.app.address;
    const errorsLogged = () => lines.filter((l) => l.includes('"level":"error"') && l.includes("API_TOKENS_FILE"));
    const metrics = () => metricsOf(server.app.httpAddress);
    const errorsBefore = (await metrics())("httpqueue_api_tokens_reloads_total", { result: "error" }) ?? -1;

    // Each state differs from the one before, so each is read and refused (an unchanged one would not be logged again).
    const bad: [string, () => void, RegExp][] = [
      [
        "a short token",
        () => {
          writeFileSync(file, `${TOKEN_B}\nshort-secret\n${TOKEN_C}\n`);
        },
        /line 2: the token must be/,
      ],
      [
        "a folder in its place",
        () => {
          unlinkSync(file);
          mkdirSync(file);
        },
        /cannot be read: EISDIR/,
      ],
      [
        "a deleted file",
        () => {
          rmSync(file, { recursive: true });
        },
        /cannot be read: ENOENT/,
      ],
      [
        "an empty file",
        () => {
          writeFileSync(file, "");
        },
        /is empty/,
      ],
    ];
    for (const [what, spoil, message] of bad) {
      spoil();
      await until(() => message.test(errorsLogged().at(-1) ?? ""), WITHIN_MS, `an error logged for ${what}`);
      const line = errorsLogged().at(-1) ?? "";
      assert.ok(line.includes(`API_TOKENS_FILE ${file} `), `the line names the file: ${line}`);
      assert.match(line, /keeping the 2 API token\(s\) in use/);
      assert.equal(await accepted(address, TOKEN_B), true, `${what}: the last good tokens are kept`);
      assert.equal(await accepted(address, TOKEN_C), false, `${what}: nothing of a bad file is taken`);
    }
    const m = await metrics();
    // At least one per state (unlinking and making the folder may be read apart: ENOENT, then EISDIR).
    assert.ok((m("httpqueue_api_tokens_reloads_total", { result: "error" }) ?? 0) >= errorsBefore + bad.length);
    assert.equal(m("httpqueue_api_tokens"), 2);

    saveByRename(file, `${TOKEN_C}\n`);
    await untilToken(address, TOKEN_C, true, "the good file to be taken");
    assert.equal(await accepted(address, TOKEN_B), false);
    assert.equal((await metrics())("httpqueue_api_tokens"), 2);

    for (const secret of [TOKEN_A, TOKEN_B, TOKEN_C, ENV_TOKEN, "short-secret"]) {
      assert.ok(!logged().includes(secret), "no token is logged");
    }
  });

  it("takes a file of comments alone as no tokens: only API_TOKENS are accepted", async () => {
    const address = server.app.address;
    writeFileSync(file, "# every token revoked\n");
    await untilToken(address, TOKEN_C, false, "the file's last token to be refused");
    assert.equal(await accepted(address, ENV_TOKEN), true);
    const m = await metricsOf(server.app.httpAddress);
    assert.equal(m("httpqueue_api_tokens"), 1);
    assert.ok((m("httpqueue_api_tokens_reloads_total", { result: "ok" }) ?? 0) >= 3);
  });

  it("reads the file when asked (SIGHUP), changed or not", async () => {
    const before = lines.length;
    assert.equal(await server.app.reloadApiTokens("SIGHUP"), true);
    assert.match(
      lines.slice(before).join(""),
      /"trigger":"SIGHUP".*API tokens reloaded .*: 1 in use \(0 added, 0 removed\)/,
    );
  });
});

describe("API_TOKENS_FILE with no tokens at start", () => {
  it("refuses every call until a token is written to it, warns at start, and is let go by stop()", async () => {
    const file = join(dir, "empty-at-start");
    writeFileSync(file, "");
    const config = loadConfig({ DATABASE_URL: fixture.db.url, API_TOKENS_FILE: file });
    assert.deepEqual(config.apiTokensFile, { path: file, tokens: [] });
    const warnings = securityWarnings(config, "127.0.0.1:50051").map((w) => w.message);
    assert.ok(
      warnings.some((w) => /API_TOKENS_FILE .* holds no tokens.*every API call is refused/.test(w)),
      warnings.join("\n"),
    );
    assert.ok(!warnings.some((w) => /authentication is off/i.test(w)), "auth is not off");

    const lines: string[] = [];
    const server = await startTestServer({ API_TOKENS_FILE: file, LOG_LEVEL: "info" }, fixture.db, {
      write: (line) => lines.push(line),
    });
    try {
      assert.equal(await accepted(server.app.address, TOKEN_A), false);
      assert.equal(await accepted(server.app.address, undefined), false);
      writeFileSync(file, `${TOKEN_A}\n`);
      await untilToken(server.app.address, TOKEN_A, true, "the first token to be accepted");
    } finally {
      await server.stop();
    }
    // Stopped: nothing reads the file any more (a watch would within 200 ms).
    const reloads = () => lines.filter((l) => l.includes("API tokens reloaded")).length;
    const before = reloads();
    assert.equal(before, 1);
    writeFileSync(file, `${TOKEN_B}\n`);
    await sleep(1000);
    assert.equal(reloads(), before);
  });
});

describe("watching the file", () => {
  const logger = createLogger("silent");

  /** A watcher of `path` alone (no poll), or a poll alone. */
  function follow(path: string, initial: string[], mode: "watch" | "poll") {
    const tokens = new TokenSet(initial);
    const results: string[] = [];
    const file = watchTokenFile({
      path,
      fixed: [],
      initial,
      tokens,
      logger,
      onReload: (result) => results.push(result),
      debounceMs: 50,
      pollIntervalMs: mode === "poll" ? 100 : 0,
      watch: mode === "watch",
    });
    return { tokens, results, file };
  }

  it("sees writes in place, renames over the file and swaps of the symlinks above it (Kubernetes)", async () => {
    const folder = mkdtempSync(join(dir, "watch-"));
    // Kubernetes' layout: tokens -> ..data/tokens, ..data -> a timestamped folder, swapped by a rename.
    const version = (name: string, content: string) => {
      mkdirSync(join(folder, name));
      writeFileSync(join(folder, name, "tokens"), content);
    };
    version("..v1", `${TOKEN_A}\n`);
    symlinkSync("..v1", join(folder, "..data"));
    symlinkSync(join("..data", "tokens"), join(folder, "tokens"));
    const path = join(folder, "tokens");
    const { tokens, results, file } = follow(path, [TOKEN_A], "watch");
    // The first look (at start) done, so that what follows is the watch's doing.
    await file.reload();
    results.length = 0;
    try {
      version("..v2", `${TOKEN_B}\n`);
      symlinkSync("..v2", join(folder, "..data_tmp"));
      renameSync(join(folder, "..data_tmp"), join(folder, "..data"));
      rmSync(join(folder, "..v1"), { recursive: true });
      await until(() => tokens.has(TOKEN_B), WITHIN_MS, "the swapped version");
      assert.equal(tokens.has(TOKEN_A), false);

      const plain = join(folder, "plain");
      writeFileSync(plain, `${TOKEN_A}\n`);
      const other = follow(plain, [TOKEN_A], "watch");
      await other.file.reload();
      try {
        writeFileSync(plain, `${TOKEN_A}\n${TOKEN_C}\n`);
        await until(() => other.tokens.has(TOKEN_C), WITHIN_MS, "a write in place");
        saveByRename(plain, `${TOKEN_B}\n`);
        await until(() => other.tokens.has(TOKEN_B) && !other.tokens.has(TOKEN_A), WITHIN_MS, "a rename over it");
      } finally {
        other.file.stop();
      }
      assert.deepEqual(results, ["ok"], "one reload for the swap, none for the other files of the folder");
    } finally {
      file.stop();
    }
  });

  it("without a watch, the poll sees changes", async () => {
    const path = join(dir, "polled");
    writeFileSync(path, `${TOKEN_A}\n`);
    const { tokens, results, file } = follow(path, [TOKEN_A], "poll");
    await file.reload();
    results.length = 0;
    try {
      writeFileSync(path, `${TOKEN_B}\n`);
      await until(() => tokens.has(TOKEN_B), WITHIN_MS, "the polled change");
      writeFileSync(path, "not a token\n");
      await until(() => results.includes("error"), WITHIN_MS, "the bad version refused");
      // Refused once, not at every poll.
      await sleep(500);
      assert.deepEqual(results, ["ok", "error"]);
      assert.equal(tokens.has(TOKEN_B), true);
    } finally {
      file.stop();
    }
    writeFileSync(path, `${TOKEN_C}\n`);
    await sleep(500);
    assert.equal(tokens.has(TOKEN_C), false, "stopped: no longer followed");
  });
});

describe("SIGHUP", () => {
  it("reads API_TOKENS_FILE again in a running server process, which carries on", async () => {
    // The file is a symlink to another folder: a write to its target is not seen by the watch, only by SIGHUP (or the poll).
    const target = mkdtempSync(join(dir, "target-"));
    const linkFolder = mkdtempSync(join(dir, "link-"));
    writeFileSync(join(target, "tokens"), `${TOKEN_A}\n`);
    const file = join(linkFolder, "tokens");
    symlinkSync(join(target, "tokens"), file);
    const proc = await spawnServer({ DATABASE_URL: fixture.db.url, API_TOKENS_FILE: file });
    try {
      assert.equal(await accepted(proc.address, TOKEN_B), false);
      writeFileSync(join(target, "tokens"), `${TOKEN_A}\n${TOKEN_B}\n`);
      proc.child.kill("SIGHUP");
      await until(() => /"trigger":"SIGHUP".*API tokens reloaded/.test(proc.output()), WITHIN_MS, "the SIGHUP reload");
      assert.match(proc.output(), /SIGHUP: reading .*tokens again/);
      assert.equal(await accepted(proc.address, TOKEN_B), true);
      assert.equal(proc.child.exitCode, null, "still running");
    } finally {
      assert.equal(await terminate(proc), 0);
    }
    assert.ok(!proc.output().includes(TOKEN_B) && !proc.output().includes(TOKEN_A), "no token in the log");
  });

  it("without API_TOKENS_FILE, is logged and ignored", async () => {
    const proc = await spawnServer({ DATABASE_URL: fixture.db.url, API_TOKENS: TOKEN_A });
    try {
      proc.child.kill("SIGHUP");
      await until(() => proc.output().includes("nothing to reload"), WITHIN_MS, "the SIGHUP to be logged");
      assert.equal(await accepted(proc.address, TOKEN_A), true);
    } finally {
      assert.equal(await terminate(proc), 0);
    }
  });
});

describe("METRICS_TOKEN", () => {
  let server: TestServer;
  let client: HttpQueueClient;
  before(async () => {
    server = await startTestServer({ METRICS_TOKEN }, fixture.db);
    client = server.client;
  });
  after(async () => {
    await server.stop();
  });

  const get = (path: string, headers: Record<string, string> = {}, method = "GET") =>
    fetch(`http://${server.app.httpAddress}${path}`, { method, headers });

  it("/metrics answers 401 with a Bearer challenge without the token, or with a wrong one", async () => {
    for (const [headers, challenge] of [
      [{}, /^Bearer realm="metrics"$/],
      [{ authorization: `Bearer ${METRICS_TOKEN}x` }, /error="invalid_token"/],
      [{ authorization: `Basic ${Buffer.from(`u:${METRICS_TOKEN}`).toString("base64")}` }, /^Bearer realm="metrics"$/],
      [{ authorization: METRICS_TOKEN }, /^Bearer/],
    ] as [Record<string, string>, RegExp][]) {
      const res = await get("/metrics", headers);
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.match(res.headers.get("www-authenticate") ?? "", challenge);
      const body = await res.text();
      assert.doesNotMatch(body, /httpqueue_/);
      assert.ok(!body.includes(METRICS_TOKEN));
    }
    assert.equal((await get("/metrics", {}, "HEAD")).status, 401);
  });

  it("/metrics answers 200 with the token; /healthz and /readyz stay open", async () => {
    await client.listWebhooks({});
    const res = await get("/metrics", { authorization: `Bearer ${METRICS_TOKEN}` });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /httpqueue_build_info/);
    assert.equal((await get("/healthz")).status, 200);
    assert.equal((await get("/readyz")).status, 200);
  });

  it("is validated at start, named and never echoed; METRICS_TOKEN_FILE reads it from a file", () => {
    const base = { DATABASE_URL: fixture.db.url };
    const invalid = (env: Record<string, string>, message: RegExp, secret?: string) => {
      assert.throws(
        () => loadConfig({ ...base, ...env }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, message);
          if (secret) assert.ok(!err.message.includes(secret));
          return true;
        },
      );
    };
    invalid({ METRICS_TOKEN: "short-secret" }, /METRICS_TOKEN must be at least 16 characters/, "short-secret");
    invalid({ METRICS_TOKEN: "has spaces inside it" }, /METRICS_TOKEN must be .*without spaces/, "spaces inside");
    const tokenFile = join(dir, "metrics-token");
    writeFileSync(tokenFile, `${METRICS_TOKEN}\n`);
    assert.equal(loadConfig({ ...base, METRICS_TOKEN_FILE: tokenFile }).metricsToken, METRICS_TOKEN);
    invalid({ METRICS_TOKEN: METRICS_TOKEN, METRICS_TOKEN_FILE: tokenFile }, /METRICS_TOKEN and METRICS_TOKEN_FILE/);
    invalid({ METRICS_TOKEN_FILE: join(dir, "missing") }, /METRICS_TOKEN_FILE cannot be read .*ENOENT/);
    writeFileSync(tokenFile, "\n");
    invalid({ METRICS_TOKEN_FILE: tokenFile }, /METRICS_TOKEN_FILE: the token must be at least 16 characters/);
    const tokensFile = join(dir, "bad-api-tokens");
    writeFileSync(tokensFile, `${TOKEN_A}\n# ok\nshort-secret\n`);
    invalid(
      { API_TOKENS_FILE: tokensFile },
      /API_TOKENS_FILE .*bad-api-tokens line 3: the token must be/,
      "short-secret",
    );
  });

  it("an open /metrics beyond loopback is warned of", () => {
    const open = loadConfig({ DATABASE_URL: fixture.db.url, HTTP_HOST: "0.0.0.0", API_TOKENS: TOKEN_A });
    const warned = (config: typeof open) =>
      securityWarnings(config, "127.0.0.1:50051", "0.0.0.0:8080").filter((w) => w.message.includes("/metrics"));
    assert.match(
      warned(open)[0]?.message ?? "",
      /\/metrics on 0\.0\.0\.0:8080 is open beyond this machine.*METRICS_TOKEN/,
    );
    assert.deepEqual(warned({ ...open, metricsToken: METRICS_TOKEN }), []);
    assert.deepEqual(warned({ ...open, httpHost: "127.0.0.1" }), []);
  });
});
