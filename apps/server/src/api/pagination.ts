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
 * The id to continue after; undefined for the first page. Page tokens are
 * opaque to callers: the base64url of the last id of the previous page.
 */
export function decodePageToken(field: string, token: string): string | undefined {
  if (token === "") return undefined;
  const id = Buffer.from(token, "base64url").toString("utf8");
  if (!UUID.test(id)) throw invalidArgument(field, "is not a token returned by this API");
  return id.toLowerCase();
}

/**
 * Cuts `rows`, fetched with a limit of `limit + 1`, to one page; the extra
 * row, when present, says that a next page exists.
 */
export function toPage<T extends { id: string }>(rows: T[], limit: number): { page: T[]; nextPageToken: string } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    page,
    nextPageToken: rows.length > limit && last ? Buffer.from(last.id, "utf8").toString("base64url") : "",
  };
}
