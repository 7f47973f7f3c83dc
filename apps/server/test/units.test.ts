import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status as grpcStatus } from "@grpc/grpc-js";
import { startReceiver } from "@httpqueue/testkit";
import { toServiceError } from "../src/api/errors.js";
import { OverloadedError } from "../src/errors.js";
import { createHttpClient } from "../src/delivery/http-client.js";
import { ConfigError, loadConfig } from "../src/config.js";
import { securityWarnings } from "../src/observability/security-warnings.js";
import { judge, nextStep, parseRetryAfter, type RetryPolicy } from "../src/delivery/retry-policy.js";
import { Pace } from "../src/delivery/pace.js";
import { throttle } from "../src/observability/db-stats.js";
import { createLogger } from "../src/observability/logger.js";

describe("retry policy", () => {
  const policy: RetryPolicy = { schedule: [5_000, 30_000, 120_000], jitter: 0.2, retryAfterMaxMs: 60_000 };
  const now = new Date("2026-01-01T00:00:00Z");
  const far = new Date("2027-01-01T00:00:00Z");
  const at = (step: ReturnType<typeof nextStep>) =>
    step.kind === "retry" ? step.at.getTime() - now.getTime() : step.kind;

  it("follows the schedule, repeating its last delay", () => {
    const mid = () => 0.5; // no jitter
    const delays = [1, 2, 3, 4, 5].map((n) =>
      at(nextStep(policy, { attemptNumber: n, maxAttempts: 10, now, expiresAt: far }, mid)),
    );
    assert.deepEqual(delays, [5_000, 30_000, 120_000, 120_000, 120_000]);
  });

  it("spreads delays by ±jitter", () => {
    assert.equal(at(nextStep(policy, { attemptNumber: 1, maxAttempts: 10, now, expiresAt: far }, () => 0)), 4_000);
    assert.equal(at(nextStep(policy, { attemptNumber: 1, maxAttempts: 10, now, expiresAt: far }, () => 1)), 6_000);
  });

  it("fails when attempts are used up, expires when the next would pass the TTL", () => {
    assert.equal(at(nextStep(policy, { attemptNumber: 10, maxAttempts: 10, now, expiresAt: far })), "failed");
    const soon = new Date(now.getTime() + 3_000);
    assert.equal(at(nextStep(policy, { attemptNumber: 1, maxAttempts: 10, now, expiresAt: soon })), "expired");
  });

  it("waits at least a Retry-After, capped", () => {
    const mid = () => 0.5;
    const step = (retryAfterMs: number) =>
      at(nextStep(policy, { attemptNumber: 1, maxAttempts: 10, now, expiresAt: far, retryAfterMs }, mid));
    assert.equal(step(1_000), 5_000, "a shorter Retry-After does not hurry the schedule");
    assert.equal(step(20_000), 20_000);
    assert.equal(step(3_600_000), 60_000, "capped by RETRY_AFTER_MAX");
  });

  it("parses Retry-After as seconds or an HTTP date", () => {
    assert.equal(parseRetryAfter("120", now), 120_000);
    assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now), 30_000);
    assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
    assert.equal(parseRetryAfter("soon", now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

describe("what an answer says of the endpoint", () => {
  const policy: RetryPolicy = { schedule: [1_000], jitter: 0, retryAfterMaxMs: 10_000 };
  const now = new Date("2026-01-01T00:00:00Z");
  const attempt = { attemptNumber: 1, maxAttempts: 5, expiresAt: new Date("2027-01-01T00:00:00Z") };
  const answer = (statusCode: number | undefined, retryAfter?: string) =>
    judge(policy, { statusCode, retryAfter, startedAt: now, durationMs: 1 }, attempt, now);

  it("410 fails the delivery for good and the endpoint is gone", () => {
    const verdict = answer(410);
    assert.equal(verdict.status, "failed");
    assert.deepEqual(verdict.endpoint, { kind: "gone" });
  });

  it("429 and 503 with Retry-After pause the endpoint (bounded); without it, 429/502/503/504 slow it", () => {
    assert.deepEqual(answer(429, "2").endpoint, { kind: "pause", until: new Date(now.getTime() + 2_000) });
    assert.deepEqual(answer(503, "3600").endpoint, { kind: "pause", until: new Date(now.getTime() + 10_000) });
    for (const code of [429, 502, 503, 504]) assert.deepEqual(answer(code).endpoint, { kind: "slow" }, String(code));
    assert.deepEqual(answer(502, "5").endpoint, { kind: "slow" }, "Retry-After counts only on 429 and 503");
    assert.equal(answer(500).endpoint, undefined);
    assert.equal(answer(undefined).endpoint, undefined, "no answer (timeout, refused) says nothing of pace");
    assert.equal(answer(301).status, "retrying", "a redirect is a failure, not followed");
    assert.deepEqual(answer(204).endpoint, { kind: "ok" });
  });
});

describe("pace", () => {
  it("spaces requests by the rate limit", () => {
    const pace = new Pace({ pausedUntil: null, pace: null, nextSendAt: null });
    pace.rateLimit = 4;
    assert.equal(pace.hold(0), undefined);
    pace.take(0);
    assert.deepEqual(pace.hold(100), { ms: 150, reason: "rate_limit" });
    assert.equal(pace.hold(250), undefined);
    pace.take(260);
    assert.deepEqual(
      pace.state(300),
      { pausedUntil: null, pace: null, nextSendAt: 500, recentSends: [0, 260] },
      "a little late: the schedule holds",
    );
  });

  it("never starts more requests within a second than the rate limit, a late start and all", () => {
    // A runner that starts each request when hold() allows it, the first one 15 ms late.
    const pace = new Pace({ pausedUntil: null, pace: null, nextSendAt: null });
    pace.rateLimit = 50;
    const starts: number[] = [];
    for (let t = 15; starts.length < 200;) {
      const hold = pace.hold(t);
      if (hold === undefined) {
        pace.take(t);
        starts.push(t);
      } else {
        t += hold.ms;
      }
    }
    // The spacing keeps to its schedule after the late start (one every 20 ms: 20, 40…).
    assert.deepEqual(starts.slice(0, 3), [15, 20, 40]);
    for (let i = 50; i < starts.length; i++) {
      const window = (starts[i] ?? 0) - (starts[i - 50] ?? 0);
      assert.ok(window >= 1000, `requests ${i - 50} to ${i} (51 of them) started within ${window} ms`);
    }
    assert.equal(starts[50], 1015, "the 51st waits a second after the first");
    assert.equal(starts[199], 3980, "then on schedule: the rate limit is reached, not undercut");
  });

  it("never starts more requests within a second than the rate limit across a hand-over to another runner", () => {
    // Runner 1 starts each request when hold() allows it, some of them late;
    // it lets go and runner 2 (another job, maybe another server) goes on from its state.
    const run = (pace: Pace, from: number, count: number, late: (i: number) => number) => {
      const starts: number[] = [];
      for (let t = from; starts.length < count;) {
        const hold = pace.hold(t);
        if (hold === undefined) {
          t += late(starts.length);
          pace.take(t);
          starts.push(t);
        } else {
          t += hold.ms;
        }
      }
      return starts;
    };
    const first = new Pace({ pausedUntil: null, pace: null, nextSendAt: null });
    first.rateLimit = 50;
    // Late by 12 ms now and then, as timers on a busy machine are.
    const before = run(first, 0, 60, (i) => (i % 7 === 3 ? 12 : 0));
    const handOver = (before.at(-1) ?? 0) + 1;
    const second = new Pace(first.state(handOver));
    second.rateLimit = 50;
    const after = run(second, handOver, 120, () => 0);
    const starts = [...before, ...after];
    for (let i = 50; i < starts.length; i++) {
      const window = (starts[i] ?? 0) - (starts[i - 50] ?? 0);
      assert.ok(window >= 1000, `requests ${i - 50} to ${i} (51 of them) started within ${window} ms`);
    }
  });

  it("goes on from the state the last runner left", () => {
    const pace = new Pace({ pausedUntil: 5_000, pace: 2, nextSendAt: 1_000 });
    assert.deepEqual(pace.hold(0), { ms: 5_000, reason: "paused" });
    assert.deepEqual(pace.hold(5_000), undefined);
    pace.take(5_000);
    assert.deepEqual(pace.hold(5_100), { ms: 400, reason: "rate_limit" }, "2 a second");
  });

  it("halves from the rate of the last second, once a second, down to 1/s; recovers step by step, then lifts", () => {
    const pace = new Pace({ pausedUntil: null, pace: null, nextSendAt: null });
    for (let t = 10; t <= 1000; t += 10) pace.take(t); // 100 in the last second
    pace.slow(1000);
    assert.equal(pace.rate(), 50);
    pace.slow(1500);
    assert.equal(pace.rate(), 50, "at most once a second");
    pace.slow(2000);
    assert.equal(pace.rate(), 25);
    for (let t = 3000; t < 20_000; t += 1000) pace.slow(t);
    assert.equal(pace.rate(), 1, "never below 1/s");
    pace.ok();
    assert.equal(pace.rate(), 2);
    let steps = 1;
    while (Number.isFinite(pace.rate())) {
      pace.ok();
      steps++;
    }
    assert.ok(steps > 10 && steps < 100, `lifted after ${steps} successes`);
  });

  it("never goes above the rate limit, and is lifted on reaching it", () => {
    const pace = new Pace({ pausedUntil: null, pace: null, nextSendAt: null });
    pace.rateLimit = 10;
    pace.take(0);
    pace.slow(0);
    assert.equal(pace.rate(), 1, "from the last second's single request, halved, but not below 1/s");
    for (let i = 0; i < 9; i++) pace.ok();
    assert.equal(pace.rate(), 10);
    assert.equal(pace.state(0).pace, null, "back at the rate limit: no longer slowed");
  });
});

describe("configuration", () => {
  const base = { DATABASE_URL: "postgres://localhost/x" };

  it("has defaults for everything but DATABASE_URL", () => {
    const config = loadConfig(base);
    assert.equal(config.grpcPort, 50051);
    assert.equal(config.grpcHost, "127.0.0.1");
    assert.deepEqual(config.retrySchedule, [5e3, 30e3, 120e3, 600e3, 1800e3, 3600e3, 7200e3, 14400e3, 28800e3]);
    assert.equal(config.maxAttempts, 10);
    assert.equal(config.defaultTtlSeconds, 86_400);
    assert.equal(config.maxPayloadBytes, 262_144);
  });

  it("serves health and metrics on 127.0.0.1:8080 unless told otherwise", () => {
    const config = loadConfig(base);
    assert.equal(config.httpHost, "127.0.0.1");
    assert.equal(config.httpPort, 8080);
    assert.equal(config.healthCheckIntervalMs, 5_000);
    assert.equal(config.metricsQueryIntervalMs, 10_000);
    assert.equal(config.metricsEventLabelLimit, 100);
    const custom = loadConfig({
      ...base,
      HTTP_HOST: "0.0.0.0",
      HTTP_PORT: "0",
      HEALTH_CHECK_INTERVAL: "250ms",
      METRICS_QUERY_INTERVAL: "1m",
      METRICS_EVENT_LABEL_LIMIT: "0",
    });
    assert.deepEqual(
      [
        custom.httpHost,
        custom.httpPort,
        custom.healthCheckIntervalMs,
        custom.metricsQueryIntervalMs,
        custom.metricsEventLabelLimit,
      ],
      ["0.0.0.0", 0, 250, 60_000, 0],
    );
  });

  it("refuses an HTTP port that is the gRPC port", () => {
    assert.throws(
      () => loadConfig({ ...base, GRPC_PORT: "9000", HTTP_PORT: "9000" }),
      /HTTP_PORT \(9000\) must differ from GRPC_PORT/,
    );
    assert.equal(loadConfig({ ...base, GRPC_PORT: "0", HTTP_PORT: "0" }).httpPort, 0, "two free ports are fine");
  });

  it("reads durations with the one grammar (@httpqueue/proto's parseDuration)", () => {
    assert.deepEqual(loadConfig({ ...base, RETRY_SCHEDULE: "1s,2.5s,1m" }).retrySchedule, [1000, 2500, 60_000]);
    assert.equal(loadConfig({ ...base, AUTO_DISABLE_AFTER: "0" }).autoDisableAfterMs, 0);
    assert.throws(() => loadConfig({ ...base, SHUTDOWN_TIMEOUT: "5 seconds" }), /SHUTDOWN_TIMEOUT must be a duration/);
  });

  it("names every bad variable, without echoing values", () => {
    assert.throws(
      () =>
        loadConfig({
          ...base,
          GRPC_PORT: "x",
          MAX_PAYLOAD_BYTES: "-1",
          DATABASE_POOL_SIZE: "secret-value",
          HTTP_PORT: "http",
          HEALTH_CHECK_INTERVAL: "often",
          METRICS_EVENT_LABEL_LIMIT: "all",
        }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /GRPC_PORT/);
        assert.match(err.message, /HTTP_PORT must be a whole number/);
        assert.match(err.message, /HEALTH_CHECK_INTERVAL must be a duration/);
        assert.match(err.message, /METRICS_EVENT_LABEL_LIMIT must be a whole number/);
        assert.match(err.message, /MAX_PAYLOAD_BYTES/);
        assert.match(err.message, /DATABASE_POOL_SIZE/);
        assert.doesNotMatch(err.message, /secret-value/);
        return true;
      },
    );
  });
});

describe("metrics throttle", () => {
  it("runs one read for concurrent scrapes and reuses its result, or its failure, while fresh", async () => {
    let reads = 0;
    let fail = false;
    const read = async () => {
      reads++;
      await new Promise((resolve) => setImmediate(resolve));
      if (fail) throw new Error("database down");
      return reads;
    };
    const fresh = throttle(read, 3_600_000, createLogger("silent"));
    assert.deepEqual(await Promise.all([fresh(), fresh(), fresh()]), [1, 1, 1]);
    assert.equal(await fresh(), 1);
    assert.equal(reads, 1);

    const stale = throttle(read, 0, createLogger("silent"));
    assert.equal(await stale(), 2);
    fail = true;
    assert.equal(await stale(), undefined, "a failed read shows nothing, not stale numbers");
    fail = false;
    assert.equal(await stale(), 4);
  });
});

describe("security settings and warnings", () => {
  const base = { DATABASE_URL: "postgres://localhost/x" };

  it("parses the destination settings, naming bad ones", () => {
    const config = loadConfig({
      ...base,
      ALLOW_PRIVATE_DESTINATIONS: "TRUE",
      DESTINATION_ALLOWLIST: "10.0.0.0/8, 127.0.0.2",
    });
    assert.equal(config.destinations.allowPrivate, true);
    assert.equal(config.destinations.allowlist.length, 2);
    assert.equal(loadConfig(base).destinations.allowPrivate, false, "the guard is on by default");
    assert.throws(
      () => loadConfig({ ...base, ALLOW_PRIVATE_DESTINATIONS: "yes" }),
      /ALLOW_PRIVATE_DESTINATIONS must be true or false/,
    );
    assert.throws(
      () => loadConfig({ ...base, DESTINATION_ALLOWLIST: "10.0.0.0/99" }),
      /DESTINATION_ALLOWLIST: "10\.0\.0\.0\/99"/,
    );
    assert.throws(() => loadConfig({ ...base, DESTINATION_ALLOWLIST: "intranet" }), /DESTINATION_ALLOWLIST/);
  });

  it("warns louder when an open API listens beyond loopback", () => {
    const open = loadConfig(base);
    assert.deepEqual(
      securityWarnings(open, "127.0.0.1:50051").map((w) => w.level),
      ["warn", "warn"],
    );
    const exposed = securityWarnings({ ...open, grpcHost: "0.0.0.0" }, "0.0.0.0:50051");
    assert.deepEqual(
      exposed.map((w) => w.level),
      ["error", "warn", "error"],
    );
    assert.match(exposed[0]?.message ?? "", /authentication is OFF.*beyond this machine.*API_TOKENS/);
    assert.match(exposed[1]?.message ?? "", /not encrypted/);
    assert.match(exposed[2]?.message ?? "", /stored in plaintext.*SECRETS_KEY/);
    const key = { SECRETS_KEY: Buffer.alloc(32, 7).toString("base64") };
    const secured = loadConfig({ ...base, ...key, API_TOKENS: "0123456789abcdef0123" });
    assert.deepEqual(securityWarnings(secured, "127.0.0.1:50051"), []);
    const permissive = loadConfig({
      ...base,
      ...key,
      API_TOKENS: "0123456789abcdef0123",
      ALLOW_PRIVATE_DESTINATIONS: "true",
    });
    assert.match(securityWarnings(permissive, "127.0.0.1:50051")[0]?.message ?? "", /ALLOW_PRIVATE_DESTINATIONS=true/);
  });
});

describe("error mapping", () => {
  const sqlError = (code: string) => Object.assign(new Error("from PostgreSQL"), { code });

  it("maps by SQLSTATE and driver code, never by message", () => {
    const cases: [unknown, string][] = [
      [sqlError("40P01"), "ABORTED"], // deadlock_detected
      [sqlError("40001"), "ABORTED"], // serialization_failure
      [sqlError("57P01"), "UNAVAILABLE"], // admin_shutdown
      [sqlError("08006"), "UNAVAILABLE"], // connection_failure
      [sqlError("ECONNREFUSED"), "UNAVAILABLE"],
      [new Error("wrapped", { cause: sqlError("40P01") }), "ABORTED"],
      [new OverloadedError("too much waiting"), "RESOURCE_EXHAUSTED"],
      [sqlError("23505"), "INTERNAL"],
      [new Error("deadlock detected"), "INTERNAL"],
    ];
    for (const [err, code] of cases) {
      const { error } = toServiceError(err);
      assert.equal(grpcStatus[error.code ?? grpcStatus.UNKNOWN], code, String(err));
      if (code === "INTERNAL") assert.equal(error.details, "internal error");
    }
  });
});

describe("delivery HTTP client", () => {
  it("keeps the start of a long body, times out the whole attempt, and ends what is in flight on close", async () => {
    const receiver = await startReceiver((req) =>
      req.path === "/long"
        ? { status: 200, body: "x".repeat(100_000) }
        : req.path === "/slow"
          ? { status: 200, delayMs: 300 }
          : "hang",
    );
    const http = createHttpClient({
      connections: 4,
      responseBodyLimitBytes: 1024,
      destinations: { allowPrivate: true, allowlist: [] },
    });
    const post = (path: string, timeoutMs: number) =>
      http.send({ url: `${receiver.url}${path}`, method: "POST", headers: {}, body: "{}", timeoutMs });
    try {
      const long = await post("/long", 5000);
      assert.equal(long.statusCode, 200);
      assert.equal(long.responseBody, "x".repeat(1024), "the start of the body, at most the limit");

      const slow = await post("/slow", 100);
      assert.equal(slow.timedOut, true);
      assert.equal(slow.error, "timed out after 0.1s");
      assert.equal(slow.statusCode, undefined);

      const hanging = post("/hang", 60_000);
      await receiver.waitForRequests(3);
      await http.close();
      const ended = await hanging;
      assert.equal(ended.statusCode, undefined, "the request in flight ended without an answer");
      assert.ok(ended.error);
    } finally {
      await http.close();
      await receiver.close();
    }
  });
});
