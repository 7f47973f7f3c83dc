import { fileURLToPath } from "node:url";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import { drizzle } from "drizzle-orm/postgres-js";
import { runMigrations } from "graphile-worker";
import { connect } from "./client.js";
import { graphileLogger, type Logger } from "../observability/logger.js";

/** Same path from src/db and dist/db. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));

// Any constant will do, as long as every httpqueue server uses the same one.
const MIGRATION_LOCK_KEY = 0x6874_7071; // "htpq"

/**
 * Brings the database schema up to date: our tables (drizzle migrations), then
 * graphile-worker's. Holds a session advisory lock throughout, so servers that
 * start at the same moment migrate one after the other.
 */
export async function migrateDatabase(databaseUrl: string, logger: Logger): Promise<void> {
  const client = connect(databaseUrl, { max: 1, connect_timeout: 10, onnotice: () => undefined });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    try {
      await migrate(drizzle(client), { migrationsFolder: MIGRATIONS_FOLDER });
      await runMigrations({ connectionString: databaseUrl, logger: graphileLogger(logger) });
    } finally {
      await client`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    }
    logger.debug("database schema is up to date");
  } finally {
    await client.end({ timeout: 5 });
  }
}
