import { randomBytes } from "node:crypto";
import postgres from "postgres";

/**
 * Where scenarios create their databases: CHAOS_DATABASE_URL, else
 * TEST_DATABASE_URL, else the local default. It must be allowed to create
 * databases.
 */
export const DEFAULT_ADMIN_URL =
  process.env.CHAOS_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export const DATABASE_PREFIX = "httpqueue_chaos_";

export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

const connect = (url: string, max = 1) => postgres(url, { max, onnotice: () => undefined, connect_timeout: 10 });

/** Creates an empty database of its own (the server migrates it at start); returns its name and URL. */
export async function createDatabase(adminUrl: string): Promise<{ name: string; url: string }> {
  const name = DATABASE_PREFIX + randomBytes(5).toString("hex");
  const admin = connect(adminUrl);
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  return { name, url: databaseUrl(adminUrl, name) };
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = connect(adminUrl);
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** A small client of a scenario's database, for the figures the API does not give. */
export function openDatabase(url: string): postgres.Sql {
  return connect(url, 2);
}

/** When each attempt to the webhook started, as the servers recorded it (ms since the epoch). */
export async function attemptStarts(sql: postgres.Sql, webhookId: string): Promise<number[]> {
  const rows = await sql<{ at: number }[]>`
    select extract(epoch from a.started_at)::float8 * 1000 as at
    from delivery_attempts a join webhook_deliveries d on d.id = a.delivery_id
    where d.webhook_id = ${webhookId}`;
  return rows.map((r) => r.at);
}
