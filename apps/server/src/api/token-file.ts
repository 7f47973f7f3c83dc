import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "../observability/logger.js";
import { parseTokenFile, TokenFileError, type TokenSet } from "../tokens.js";

export interface TokenFileOptions {
  /** API_TOKENS_FILE. */
  path: string;
  /** API_TOKENS: accepted whatever the file says. */
  fixed: readonly string[];
  /** The file's tokens as read at start. */
  initial: readonly string[];
  /** What the API checks: replaced by each good read. */
  tokens: TokenSet;
  logger: Logger;
  /** Told of each reload, good or refused, with the number of tokens in use after it. */
  onReload?: (result: "ok" | "error", inUse: number) => void;
  /** How long changes must settle before the file is read; default 200 ms. */
  debounceMs?: number;
  /** The fallback for file systems whose changes are not reported; default 5 s, 0: none (tests). */
  pollIntervalMs?: number;
  /** Watch the file's folder for changes; default true (false: tests of the polling). */
  watch?: boolean;
}

export interface TokenFile {
  /** Reads the file now (SIGHUP), whether or not it changed; resolves true when its tokens are in use. */
  reload(trigger?: string): Promise<boolean>;
  /** Stops watching and polling. */
  stop(): void;
}

const DEFAULT_DEBOUNCE_MS = 200;
const DEFAULT_POLL_INTERVAL_MS = 5_000;

/**
 * Keeps `tokens` in step with API_TOKENS_FILE. The file's folder is watched
 * rather than the file, so that a rename over it (an editor saving) and a
 * swap of the symlinks above it (a Kubernetes secret or config map) are seen;
 * a slow poll catches what the watch misses (network file systems). A file
 * that cannot be read, holds a bad token, or is empty while it had tokens is
 * logged (by its path and line, never a token) and the tokens in use are kept;
 * the next good version is taken. A file of # comments alone holds no tokens. Changes are read once they settle; a read whose content is
 * the same as the last one's does nothing unless it was asked for (SIGHUP).
 */
export function watchTokenFile(options: TokenFileOptions): TokenFile {
  const { path, fixed, tokens } = options;
  const log = options.logger.child({ component: "api-tokens", file: path });
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;

  let fileTokens: readonly string[] = options.initial;
  /** What the last read saw (a digest of the content, or the error code): unchanged, it is not acted on twice. */
  let lastSeen: string | undefined;
  let lastGood = true;
  let stopped = false;
  // A function, not the variable: whether it stopped during an await is not known at compile time.
  const isStopped = () => stopped;

  /** One read at a time, in order; automatic ones already waiting are not queued again. */
  let queue: Promise<unknown> = Promise.resolve();
  let automaticQueued = false;
  const enqueue = (read: () => Promise<boolean>): Promise<boolean> => {
    const run = queue.then(read);
    queue = run.catch(() => undefined);
    return run;
  };
  const readSoon = (trigger: string) => {
    if (automaticQueued || isStopped()) return;
    automaticQueued = true;
    void enqueue(() => {
      automaticQueued = false;
      return read(trigger, false);
    });
  };

  async function read(trigger: string, forced: boolean): Promise<boolean> {
    if (isStopped()) return lastGood;
    let seen: string;
    let problem: string | undefined;
    let parsed: string[] = [];
    try {
      const content = await readFile(path);
      seen = createHash("sha256").update(content).digest("hex");
      try {
        // An empty file never takes tokens away: it is what a truncated or half-written file looks like.
        parsed = parseTokenFile(content.toString("utf8"), fileTokens.length > 0);
      } catch (err) {
        if (!(err instanceof TokenFileError)) throw err;
        problem = err.message;
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "unknown error";
      seen = `unreadable: ${code}`;
      problem = `cannot be read: ${code}`;
    }
    if (isStopped() || (!forced && seen === lastSeen)) return lastGood;
    const first = lastSeen === undefined;
    lastSeen = seen;

    if (problem !== undefined) {
      lastGood = false;
      log.error(
        { trigger, inUse: tokens.size },
        `API_TOKENS_FILE ${path} ${problem}: keeping the ${tokens.size} API token(s) in use`,
      );
      options.onReload?.("error", tokens.size);
      return false;
    }

    const before = new Set(fileTokens);
    const after = new Set(parsed);
    const added = [...after].filter((t) => !before.has(t)).length;
    const removed = [...before].filter((t) => !after.has(t)).length;
    fileTokens = parsed;
    tokens.replace([...fixed, ...parsed]);
    lastGood = true;
    // The first look only confirms what was read at start; it is news only if the file changed since.
    if (first && !forced && added === 0 && removed === 0) return true;
    log.info(
      { trigger, inUse: tokens.size, added, removed },
      `API tokens reloaded from ${path}: ${tokens.size} in use (${added} added, ${removed} removed)`,
    );
    if (tokens.size === 0) {
      log.warn({ trigger }, `no API tokens: every API call is refused until tokens are added to ${path}`);
    }
    options.onReload?.("ok", tokens.size);
    return true;
  }

  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let watchFailed = false;
  const startWatching = () => {
    if (options.watch === false || watcher || isStopped()) return;
    try {
      watcher = watch(dirname(path), { persistent: false }, () => {
        if (debounce) return;
        debounce = setTimeout(() => {
          debounce = undefined;
          readSoon("change");
        }, debounceMs);
      });
      watcher.on("error", (err: NodeJS.ErrnoException) => {
        // The folder went away, say: the poll carries on, and watches again once it can.
        log.warn({ code: err.code }, `stopped watching the folder of ${path}; polling it`);
        watcher?.close();
        watcher = undefined;
      });
      watchFailed = false;
    } catch (err) {
      // Tried again at each poll; said once.
      if (!watchFailed) {
        log.warn(
          { code: (err as NodeJS.ErrnoException).code },
          `cannot watch the folder of ${path}: changes are seen by polling only`,
        );
      }
      watchFailed = true;
    }
  };

  startWatching();
  const poll =
    pollIntervalMs > 0
      ? setInterval(() => {
          startWatching();
          readSoon("poll");
        }, pollIntervalMs)
      : undefined;
  poll?.unref();
  // The file may have changed since it was read at start.
  readSoon("start");

  return {
    reload: (trigger = "reload") => enqueue(() => read(trigger, true)),
    stop() {
      stopped = true;
      watcher?.close();
      watcher = undefined;
      clearTimeout(debounce);
      clearInterval(poll);
    },
  };
}
