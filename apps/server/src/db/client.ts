import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "./schema.js";

export type Sql = postgres.Sql;
export type Db = PostgresJsDatabase<typeof schema> & { $client: Sql };
/** A drizzle transaction of a `Db`. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
/** Where a statement can run: the pool (through drizzle or not), or a transaction of it (drizzle's or not). */
export type Queryable = Db | Tx | Sql | postgres.TransactionSql;

/** The postgres.js client a statement runs on. */
export function clientOf(db: Queryable): Sql | postgres.TransactionSql {
  if ("$client" in db) return db.$client;
  // A drizzle transaction: its session holds the transaction's own postgres.js client.
  if ("_" in db) return (db._.session as unknown as { client: postgres.TransactionSql }).client;
  return db;
}

export interface DatabaseOptions {
  url: string;
  poolSize: number;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
  /** The server cancels any statement that runs longer. */
  statementTimeoutMs?: number;
}

/**
 * `make(db)`, made once per database client (on first use) and kept as long
 * as the client: the statements and batchers that belong to one pool.
 */
export function perDatabase<T>(make: (db: Db) => T): (db: Db) => T {
  const made = new WeakMap<Db, T>();
  return (db) => {
    let value = made.get(db);
    if (value === undefined) {
      value = make(db);
      made.set(db, value);
    }
    return value;
  };
}

/** Longest wait, in seconds, before a pool connection tries again after failing to connect. */
export const RECONNECT_BACKOFF_MAX_S = 0.5;

/**
 * Seconds before a connection that failed tries again, for the pool's
 * `retries` failures in a row (counted across its connections). postgres.js's
 * own backoff (3^retries / 100 s, up to 20 s) reaches its cap after ten
 * failures, which a pool of ten reaches at the first refusal: a query then
 * waited up to 20 s for its connection's next try, during an outage (callers'
 * deadlines passed instead of an UNAVAILABLE answer) and long after it
 * (deliveries resumed 10 to 20 s after PostgreSQL was back).
 */
export function reconnectBackoff(retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.01 * 2 ** retries, RECONNECT_BACKOFF_MAX_S);
}

/**
 * A postgres.js client for a connection string, which may name a Unix socket
 * directory as libpq does (`postgres://user@localhost/db?host=/var/run/postgresql`):
 * postgres.js takes it only as an option (left in the URL, it would send
 * `host` to the server as a setting). graphile-worker's driver, pg, reads it
 * from the URL itself. Reconnections wait at most RECONNECT_BACKOFF_MAX_S.
 */
export function connect(url: string, options: postgres.Options<Record<string, never>>): Sql {
  const withBackoff = { backoff: reconnectBackoff, ...options };
  const parsed = new URL(url);
  const socketDir = parsed.searchParams.get("host");
  if (socketDir?.startsWith("/") !== true) return postgres(url, withBackoff);
  parsed.searchParams.delete("host");
  return postgres(parsed.toString(), { ...withBackoff, host: socketDir });
}

/** A pooled postgres.js client wrapped by drizzle. Connects lazily, on first query. */
export function createDatabase(options: DatabaseOptions): Db {
  const client = connect(options.url, {
    max: options.poolSize,
    connect_timeout: 10,
    onnotice: () => undefined,
    connection: {
      application_name: options.applicationName ?? "httpqueue",
      ...(options.statementTimeoutMs === undefined ? {} : { statement_timeout: options.statementTimeoutMs }),
    },
  });
  return drizzle(client, { schema });
}
