import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { startServer, type Server } from "./helpers.js";

/**
 * webhookctl as users get it: `pnpm pack` of @httpqueue/proto, @httpqueue/sdk
 * and @httpqueue/cli, installed with npm into an empty folder outside the
 * workspace, and its installed bin run against a real server.
 */

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const PACKAGES = ["packages/proto", "packages/sdk", "apps/cli"].map((dir) => join(ROOT, dir));

/** The pnpm running these tests (when they run through it), else the one on PATH. */
const execPath = process.env.npm_execpath ?? "";
const PNPM: [string, string[]] = /pnpm\.c?js$/.test(execPath) ? [process.execPath, [execPath]] : ["pnpm", []];

/** npm reads its own configuration; pnpm's script variables only confuse it. */
const npmEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_")));

describe("the packed CLI", () => {
  let server: Server;
  let dir: string;
  let bin: string;

  before(async () => {
    server = await startServer();
    dir = await mkdtemp(join(tmpdir(), "webhookctl-package-"));
    for (const pkg of PACKAGES) {
      await run(PNPM[0], [...PNPM[1], "pack", "--pack-destination", dir], { cwd: pkg });
    }
    const tarballs = (await readdir(dir)).filter((f) => f.endsWith(".tgz")).map((f) => join(dir, f));
    assert.equal(tarballs.length, 3, `three tarballs, got ${tarballs.join(", ")}`);
    const app = join(dir, "app");
    await mkdir(app);
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "app", private: true }));
    await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...tarballs], {
      cwd: app,
      env: npmEnv,
    });
    bin = join(app, "node_modules", ".bin", "webhookctl");
  });
  after(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The installed webhookctl, run through its shebang with nothing of the workspace around. */
  const webhookctl = (args: string[]) =>
    run(bin, args, { cwd: dir, env: { PATH: process.env.PATH, WEBHOOKCTL_ADDR: server.address }, timeout: 60_000 });

  it("installs a webhookctl that shows its help", async () => {
    const { stdout, stderr } = await webhookctl(["--help"]);
    assert.equal(stderr, "");
    assert.match(stdout, /^Usage: webhookctl /);
    for (const command of ["webhooks", "events", "status", "deliveries", "attempts", "tail"]) {
      assert.match(stdout, new RegExp(`\\n {2}${command}\\b`), `${command} in the help`);
    }
  });

  it("talks to a real server", async () => {
    const registered = await webhookctl([
      ...["webhooks", "register", "--namespace", "packed", "--event", "ping"],
      ...["--url", "https://example.test/hook", "--json"],
    ]);
    const { webhookId } = JSON.parse(registered.stdout) as { webhookId: string };
    const { stdout } = await webhookctl(["webhooks", "list", "--json"]);
    const listed = JSON.parse(stdout) as { webhooks: { id: string; namespace: string }[] };
    assert.deepEqual(
      listed.webhooks.map((w) => [w.id, w.namespace]),
      [[webhookId, "packed"]],
    );
  });
});
