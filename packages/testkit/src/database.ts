import { createHash, randomBytes } from "node:crypto";
import postgres from "postgres";

/**
 * Tests run against a real PostgreSQL. TEST_DATABASE_URL names a database to
 * connect to for administration (creating and dropping databases).
 */
export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** The URL of database `name` on the test server. */
export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A small client for assertions and fixtures. */
  sql: postgres.Sql;
  drop(): Promise<void>;
}

export interface TemplateOptions {
  /** Anything that changes when the schema does (e.g. the migration files). */
  key: string;
  /** Brings an empty database at `url` up to date. */
  migrate(url: string): Promise<void>;
}

const TEMPLATE_LOCK = 0x6874_7074; // "htpt"
const TEMPLATE_PREFIX = "httpqueue_test_tpl_";

const connect = (url: string, max = 1) => postgres(url, { max, onnotice: () => undefined });

/**
 * Creates the migrated template database once; test files running in
 * parallel wait for it. Older templates are dropped.
 */
async function ensureTemplate(admin: postgres.Sql, template: TemplateOptions): Promise<string> {
  const name = TEMPLATE_PREFIX + createHash("sha256").update(template.key).digest("hex").slice(0, 12);
  await admin`select pg_advisory_lock(${TEMPLATE_LOCK})`;
  try {
    const [existing] = await admin`select 1 from pg_database where datname = ${name}`;
    if (existing) return name;
    // Built under another name and renamed when complete: a run that dies
    // half way never leaves a broken template behind.
    const building = `${name}_building`;
    await admin.unsafe(`drop database if exists "${building}" with (force)`);
    await admin.unsafe(`create database "${building}"`);
    await template.migrate(databaseUrl(building));
    await admin.unsafe(`alter database "${building}" rename to "${name}"`);
    const stale = await admin<{ datname: string }[]>`
      select datname from pg_database where datname like ${TEMPLATE_PREFIX + "%"} and datname <> ${name}`;
    for (const { datname } of stale) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
    return name;
  } finally {
    await admin`select pg_advisory_unlock(${TEMPLATE_LOCK})`;
  }
}

/**
 * A database of its own for one test file: a clone of the migrated template
 * when `template` is given, otherwise empty (the server migrates it at start).
 */
export async function createTestDatabase(template?: TemplateOptions): Promise<TestDatabase> {
  const admin = connect(ADMIN_URL);
  try {
    const source = template ? await ensureTemplate(admin, template) : "template1";
    const name = `httpqueue_test_${randomBytes(6).toString("hex")}`;
    await admin.unsafe(`create database "${name}" template "${source}"`);
    const url = databaseUrl(name);
    const sql = connect(url, 2);
    return {
      name,
      url,
      sql,
      async drop() {
        await sql.end({ timeout: 5 });
        const dropper = connect(ADMIN_URL);
        try {
          await dropper.unsafe(`drop database if exists "${name}" with (force)`);
        } finally {
          await dropper.end({ timeout: 5 });
        }
      },
    };
  } finally {
    await admin.end({ timeout: 5 });
  }
}
