import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "./schema.js";

export type Sql = postgres.Sql;
export type Db = PostgresJsDatabase<typeof schema> & { $client: Sql };

export interface DatabaseOptions {
  url: string;
  poolSize: number;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
  /** The server cancels any statement that runs longer. */
  statementTimeoutMs?: number;
}

/** A pooled postgres.js client wrapped by drizzle. Connects lazily, on first query. */
export function createDatabase(options: DatabaseOptions): Db {
  const client = postgres(options.url, {
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
