/**
 * The smallest UUIDv7 made at or after `at`: ids are time-ordered (their
 * first 48 bits are the milliseconds since the epoch, taken when the row is
 * made, not before its transaction's `now()`), so "created at or after
 * `at`" implies "id >= uuidv7Floor(at)": an index range on the id.
 */
export function uuidv7Floor(at: Date): string {
  const hex = Math.max(0, Math.floor(at.getTime())).toString(16).padStart(12, "0").slice(-12);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`;
}
