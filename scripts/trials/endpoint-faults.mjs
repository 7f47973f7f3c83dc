// A fault trial of endpoint-aware delivery, by hand: two built servers on one
// database, an ordered webhook with a rate limit, 20 keys × 40 events pushed
// through both (idempotency keys, failed pushes retried), every 7th request
// answered 503; one server SIGKILLed at 5 s and restarted 3 s later, and, with
// --pg-restart, `pg_ctlcluster 15 main restart` at 13 s. Prints whether every
// event was delivered, how many arrived out of order per key (0 expected) and
// the busiest second (at most the rate limit expected).
//
//   pnpm build && node scripts/trials/endpoint-faults.mjs [--pg-restart]
//
// Uses the PostgreSQL on 127.0.0.1:5432 (PGUSER postgres, trust), a database
// of its own (dropped and created), gRPC ports 51061/51062, HTTP 52061/52062.
import { execFileSync, spawn } from "node:child_process";
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const { createClient } = await import(new URL("packages/sdk/dist/index.js", `file://${root}`).href);
const MAIN = `${root}apps/server/dist/main.js`;
const DB = "httpqueue_trial_endpoints";
const RATE = 50;
const KEYS = 20;
const PER_KEY = 40;
const pgRestart = process.argv.includes("--pg-restart");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const psql = (...args) => execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-q", ...args], { stdio: "pipe" });
psql("-c", `drop database if exists ${DB} with (force)`, "-c", `create database ${DB}`);

const seen = [];
let answered = 0;
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const { key, n } = JSON.parse(body);
    seen.push({ key, n, at: Date.now() });
    answered++;
    setTimeout(() => res.writeHead(answered % 7 === 0 ? 503 : 200).end(), 5);
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));

const servers = {};
const start = (name, port) => {
  servers[name] = spawn("node", [MAIN], {
    env: {
      ...process.env,
      DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${DB}`,
      GRPC_PORT: String(port),
      HTTP_PORT: String(port + 1000),
      ALLOW_PRIVATE_DESTINATIONS: "true",
      LOG_LEVEL: "error",
    },
    stdio: "ignore",
  });
};
start("a", 51061);
start("b", 51062);
const clients = [createClient({ address: "127.0.0.1:51061" }), createClient({ address: "127.0.0.1:51062" })];
for (const client of clients) {
  for (let i = 0; ; i++) {
    try {
      await client.listWebhooks({});
      break;
    } catch (err) {
      if (i > 100) throw err;
      await sleep(200);
    }
  }
}
const { webhookId } = await clients[0].registerWebhook({
  namespace: "trial",
  event: "e",
  url: `http://127.0.0.1:${receiver.address().port}/`,
  ordering: 1, // ORDERING_BY_KEY
  rateLimitPerSecond: RATE,
  retryPolicy: { scheduleSeconds: [1] },
});

const t0 = Date.now();
const say = (text) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);
let retried = 0;
const push = async (key, n) => {
  for (;;) {
    try {
      const payload = { key, n };
      await clients[n % 2].pushEvent({
        namespace: "trial",
        event: "e",
        payload,
        orderingKey: key,
        idempotencyKey: `${key}-${n}`,
      });
      return;
    } catch {
      retried++;
      await sleep(200);
    }
  }
};
const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
const pushing = (async () => {
  for (let n = 0; n < PER_KEY; n++) {
    await Promise.all(keys.map((key) => push(key, n)));
    await sleep(150);
  }
})();
setTimeout(() => {
  say("SIGKILL server a");
  servers.a.kill("SIGKILL");
  setTimeout(() => {
    say("restart server a");
    start("a", 51061);
  }, 3000);
}, 5000);
if (pgRestart) {
  setTimeout(() => {
    say("restart PostgreSQL");
    execFileSync("pg_ctlcluster", ["15", "main", "restart"]);
    say("PostgreSQL is back");
  }, 13_000);
}
await pushing;
say(`pushed ${KEYS * PER_KEY} events (${retried} calls retried)`);

const total = KEYS * PER_KEY;
for (;;) {
  try {
    const { counts } = await clients[1].getWebhookStatus({ webhookId, pageSize: 1 });
    if (Number(counts.find((c) => c.status === 3)?.count ?? 0) >= total) break; // SUCCEEDED
  } catch {
    // the database may be restarting
  }
  if (Date.now() - t0 > 180_000) throw new Error("not every event was delivered within 3 minutes");
  await sleep(500);
}
let outOfOrder = 0;
const firsts = new Map();
for (const { key, n } of seen) {
  const list = firsts.get(key) ?? [];
  firsts.set(key, list);
  if (list.includes(n)) continue;
  if (list.some((m) => m > n)) outOfOrder++;
  list.push(n);
}
const times = seen.map((s) => s.at).sort((x, y) => x - y);
let busiest = 0;
for (let i = 0, j = 0; i < times.length; i++) {
  while ((times[i] ?? 0) - (times[j] ?? 0) >= 1000) j++;
  busiest = Math.max(busiest, i - j + 1);
}
say(
  `delivered ${total} of ${total}; ${seen.length} requests; out of order ${outOfOrder}; busiest second ${busiest} (limit ${RATE})`,
);
for (const client of clients) client.close();
for (const child of Object.values(servers)) child.kill("SIGTERM");
receiver.close();
await sleep(2000);
psql("-c", `drop database if exists ${DB} with (force)`);
process.exit(outOfOrder === 0 ? 0 : 1);
