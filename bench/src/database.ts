import { randomBytes } from "node:crypto";
import { connect as connectTo } from "@httpqueue/server/dist/db/client.js";
import type postgres from "postgres";

/** Every database the harness creates starts with this; a run drops what it created. */
export const DATABASE_PREFIX = "httpqueue_bench_";

export interface BenchDatabase {
  name: string;
  url: string;
  /** A small client for seeding and statistics (its own commits are few and counted apart). */
  sql: postgres.Sql;
  drop(): Promise<void>;
}

export interface DatabaseAdmin {
  /** A new, empty database (or a copy of `template`). */
  create(options?: { template?: string; label?: string }): Promise<BenchDatabase>;
  /** The server's version and the settings that bound commit throughput. */
  serverInfo(): Promise<Record<string, string>>;
  /** Drops every database created here and not dropped yet (an interrupted run). */
  dropAll(): Promise<void>;
  close(): Promise<void>;
}

/** application_name of the harness's own connections: their CPU is not the server's. */
export const BENCH_APPLICATION_NAME = "httpqueue-bench";

/** A client of the harness (a `?host=/socket/dir` in the URL is a Unix socket, as for the server). */
export const connect = (url: string, max = 1) =>
  connectTo(url, { max, onnotice: () => undefined, connection: { application_name: BENCH_APPLICATION_NAME } });

/** The URL of database `name` on the server `adminUrl` points to. */
export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Creates and drops databases through `adminUrl`, which must be allowed to. */
export function databaseAdmin(adminUrl: string): DatabaseAdmin {
  const admin = connect(adminUrl);
  const created = new Set<string>();
  const dropDatabase = async (name: string) => {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    created.delete(name);
  };
  return {
    async create(options = {}) {
      const name = `${DATABASE_PREFIX}${options.label ? `${options.label}_` : ""}${randomBytes(5).toString("hex")}`;
      const template = options.template ? ` template "${options.template}"` : "";
      // A template's last user may take a moment to disconnect.
      for (let attempt = 1; ; attempt++) {
        try {
          await admin.unsafe(`create database "${name}"${template}`);
          break;
        } catch (err) {
          if ((err as { code?: string }).code !== "55006" || attempt === 20) throw err;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      created.add(name);
      const url = databaseUrl(adminUrl, name);
      const sql = connect(url, 2);
      return {
        name,
        url,
        sql,
        async drop() {
          await sql.end({ timeout: 5 });
          await dropDatabase(name);
        },
      };
    },
    async serverInfo() {
      const rows = await admin<{ name: string; setting: string }[]>`
        select name, current_setting(name) as setting from pg_settings
        where name in ('server_version', 'synchronous_commit', 'fsync', 'wal_sync_method', 'shared_buffers',
                       'max_connections', 'commit_delay', 'wal_level')`;
      return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
    },
    async dropAll() {
      for (const name of [...created]) await dropDatabase(name);
    },
    close: () => admin.end({ timeout: 5 }),
  };
}
