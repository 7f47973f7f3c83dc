import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { MIGRATIONS_FOLDER, migrateDatabase } from "../../src/db/migrate.js";
import { createLogger } from "../../src/observability/logger.js";

/**
 * Tests run against a real PostgreSQL: TEST_DATABASE_URL names a database to
 * connect to for administration (creating and dropping databases).
 */
export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** A name that changes whenever a migration (ours or graphile-worker's) does. */
function templateName(): string {
  const hash = createHash("sha256");
  for (const file of readdirSync(MIGRATIONS_FOLDER, { recursive: true }).map(String).sort()) {
    if (file.endsWith(".sql") || file.endsWith(".json"))
      hash.update(file).update(readFileSync(join(MIGRATIONS_FOLDER, file)));
  }
  const graphileVersion = (
    JSON.parse(readFileSync(new URL(import.meta.resolve("graphile-worker/package.json")), "utf8")) as {
      version: string;
    }
  ).version;
  hash.update(graphileVersion);
  return `httpqueue_test_tpl_${hash.digest("hex").slice(0, 12)}`;
}

const TEMPLATE_LOCK = 0x6874_7074; // "htpt"

/** Creates the migrated template database once; test files running in parallel wait for it. */
async function ensureTemplate(admin: postgres.Sql): Promise<string> {
  const name = templateName();
  await admin`select pg_advisory_lock(${TEMPLATE_LOCK})`;
  try {
    const [existing] = await admin`select 1 from pg_database where datname = ${name}`;
    if (existing) return name;
    const building = `${name}_building`;
    await admin.unsafe(`drop database if exists "${building}" with (force)`);
    await admin.unsafe(`create database "${building}"`);
    await migrateDatabase(databaseUrl(building), createLogger("silent"));
    await admin.unsafe(`alter database "${building}" rename to "${name}"`);
    // Older templates are no longer needed.
    const stale = await admin<{ datname: string }[]>`
      select datname from pg_database where datname like 'httpqueue_test_tpl_%' and datname <> ${name}`;
    for (const { datname } of stale) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
    return name;
  } finally {
    await admin`select pg_advisory_unlock(${TEMPLATE_LOCK})`;
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A small client for assertions and fixtures. */
  sql: postgres.Sql;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own, cloned from the template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
  try {
    const template = await ensureTemplate(admin);
    const name = `httpqueue_test_${randomBytes(6).toString("hex")}`;
    await admin.unsafe(`create database "${name}" template "${template}"`);
    const url = databaseUrl(name);
    const sql = postgres(url, { max: 2, onnotice: () => undefined });
    return {
      name,
      url,
      sql,
      async drop() {
        await sql.end({ timeout: 5 });
        const admin2 = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
        try {
          await admin2.unsafe(`drop database if exists "${name}" with (force)`);
        } finally {
          await admin2.end({ timeout: 5 });
        }
      },
    };
  } finally {
    await admin.end({ timeout: 5 });
  }
}
