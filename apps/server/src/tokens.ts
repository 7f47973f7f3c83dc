import { createHash, timingSafeEqual } from "node:crypto";

/** Shortest bearer token accepted (API_TOKENS, API_TOKENS_FILE, METRICS_TOKEN). */
export const MIN_TOKEN_LENGTH = 16;

/** What is wrong with `token`, or undefined. Never quotes the token: messages name it by position. */
export function tokenProblem(token: string): string | undefined {
  return token.length < MIN_TOKEN_LENGTH || /\s/.test(token)
    ? `must be at least ${MIN_TOKEN_LENGTH} characters, without spaces`
    : undefined;
}

export class TokenFileError extends Error {
  override name = "TokenFileError";
}

/**
 * The tokens of an API_TOKENS_FILE: one a line; blank lines and lines starting
 * with # are skipped. Throws a TokenFileError naming the first bad line by its
 * number. A file with nothing but comments holds no tokens; one with nothing
 * at all is refused as empty when `refuseEmpty` (a reload while the file's
 * tokens are in use: a truncated or half-written file must not remove them).
 */
export function parseTokenFile(text: string, refuseEmpty: boolean): string[] {
  if (refuseEmpty && text.trim() === "") {
    throw new TokenFileError("is empty (truncated, or still being written?); a file with only # comments holds none");
  }
  const tokens: string[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const problem = tokenProblem(line);
    if (problem) throw new TokenFileError(`line ${i + 1}: the token ${problem}`);
    tokens.push(line);
  }
  return tokens;
}

/** The token of an `Authorization: Bearer <token>` header; undefined when it is missing or not of that form. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}

/**
 * A set of secret tokens that can be replaced while in use. Membership is
 * tested in constant time: every token is compared, whichever matches, as
 * SHA-256 digests so that their lengths leak nothing either.
 */
export class TokenSet {
  #digests: Buffer[] = [];
  #size = 0;

  constructor(tokens: Iterable<string> = []) {
    this.replace(tokens);
  }

  /** Distinct tokens held. */
  get size(): number {
    return this.#size;
  }

  replace(tokens: Iterable<string>): void {
    const distinct = new Set(tokens);
    this.#digests = [...distinct].map(digest);
    this.#size = distinct.size;
  }

  has(presented: string): boolean {
    const candidate = digest(presented);
    let found = false;
    for (const known of this.#digests) found = timingSafeEqual(candidate, known) || found;
    return found;
  }
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}
