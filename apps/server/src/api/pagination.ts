import { invalidArgument } from "./errors.js";
import { UUID } from "./validation.js";

/** 0 takes the default. */
export function checkPageSize(field: string, value: number, defaultSize: number, max: number): number {
  if (value === 0) return defaultSize;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw invalidArgument(field, `must be between 1 and ${max} (0 for the default, ${defaultSize})`);
  }
  return value;
}

/**
 * The key to continue after; undefined for the first page. Page tokens are
 * opaque to callers: the base64url of the last key of the previous page, an
 * id unless `key` says what else a list's keys look like.
 */
export function decodePageToken(field: string, token: string, key: RegExp = UUID): string | undefined {
  if (token === "") return undefined;
  const value = Buffer.from(token, "base64url").toString("utf8");
  if (!key.test(value)) throw invalidArgument(field, "is not a token returned by this API");
  return value.toLowerCase();
}

/**
 * Cuts `rows`, fetched with a limit of `limit + 1`, to one page; the extra
 * row, when present, says that a next page exists. `key` is what the next
 * page continues after (the row's id unless given).
 */
export function toPage<T>(
  rows: T[],
  limit: number,
  key: (row: T) => string = (row) => (row as { id: string }).id,
): { page: T[]; nextPageToken: string } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    page,
    nextPageToken:
      rows.length > limit && last !== undefined ? Buffer.from(key(last), "utf8").toString("base64url") : "",
  };
}
