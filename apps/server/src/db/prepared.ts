import { fillPlaceholders, type SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { clientOf, type Queryable } from "./client.js";

const dialect = new PgDialect();

/**
 * A statement of the hot path, run as a named prepared statement: each pool
 * connection parses and plans it once, and each run is one round trip. (A
 * statement sent through drizzle's `execute` is unnamed: two round trips, one
 * to describe its parameters, and a parse and plan every time.)
 *
 * `query` is built once; `sql.placeholder(name)` marks what changes per run.
 */
export function preparedStatement<Row extends Record<string, unknown>>(query: SQL) {
  const { sql: text, params } = dialect.sqlToQuery(query);
  return (db: Queryable, values: Record<string, unknown>): Promise<Row[]> => {
    return clientOf(db).unsafe<Row[]>(text, fillPlaceholders(params, values) as never[], { prepare: true });
  };
}
