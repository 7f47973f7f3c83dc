/**
 * The proto name (snake_case) of the first top-level field of a decoded
 * message that holds, at any depth, a string for which `test` is true (map
 * keys included); undefined when none does. A oneof (ts-proto's
 * `{ $case, value }`) is named by its member that is set.
 */
export function findField(message: object, test: (text: string) => boolean): string | undefined {
  const search = (value: unknown): boolean => {
    if (typeof value === "string") return test(value);
    if (Array.isArray(value)) return value.some(search);
    if (value !== null && typeof value === "object") {
      return Object.entries(value).some(([key, inner]) => test(key) || search(inner));
    }
    return false;
  };
  for (const [key, value] of Object.entries(message) as [string, unknown][]) {
    if (!search(value)) continue;
    const member = (value as { $case?: unknown } | null)?.$case;
    const name = typeof member === "string" ? member : key;
    return name.replace(/[A-Z]/g, (c: string) => `_${c.toLowerCase()}`);
  }
  return undefined;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Whether a string holds a lone surrogate (half of a UTF-16 pair): text that UTF-8 cannot carry. */
export function hasLoneSurrogate(text: string): boolean {
  LONE_SURROGATE.lastIndex = 0;
  return LONE_SURROGATE.test(text);
}

/** Each lone surrogate replaced by U+FFFD, as String.prototype.toWellFormed (ES2024) does. */
export function toWellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, "\uFFFD");
}
