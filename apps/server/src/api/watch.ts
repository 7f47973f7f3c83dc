import { setTimeout as sleep } from "node:timers/promises";
import { Metadata, status, type ServerWritableStream } from "@grpc/grpc-js";
import type { WatchDeliveriesRequest, WatchDeliveriesResponse } from "@httpqueue/proto";
import { findAttempts, type AttemptRow } from "../db/attempts.js";
import type { Db } from "../db/client.js";
import {
  announceWatchers,
  CHANGES_CHANNEL,
  parseChanges,
  webhookNames,
  withdrawWatchers,
  type DeliveryChange,
} from "../db/delivery-changes.js";
import { findEvent } from "../db/events.js";
import { findWebhook } from "../db/webhooks.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics, WatcherEndReason } from "../observability/metrics.js";
import { toAttempt, toDeliveryStatus } from "./convert.js";
import type { ApiDeps } from "./deps.js";
import { notFound } from "./errors.js";
import { checkId, checkName } from "./validation.js";

// WatchDeliveries: the changes of deliveries, made by any server on the
// database, streamed to watchers as they are committed. One hub per server
// listens on the changes channel while it has watchers (and keeps its row in
// delivery_watchers, without which the triggers send nothing), matches each
// change against the watchers' filters, and writes it to those it matches.
// A watcher whose client reads too slowly is ended: nothing waits for it.

export interface WatchFilter {
  namespace?: string | undefined;
  webhookId?: string | undefined;
  eventId?: string | undefined;
}

/** One open stream, as the hub sees it. */
export interface Watcher {
  filter: WatchFilter;
  /**
   * Takes an update. With WATCH_BUFFER messages unread by its client, it
   * returns a promise that resolves once the client has taken them, or
   * once the watcher is ended for not doing so within STALL_MS.
   */
  send(update: WatchDeliveriesResponse): Promise<void> | undefined;
  /** Ends the stream with this status. */
  end(code: status, details: string, reason: WatcherEndReason): void;
}

export interface WatchHub {
  /** Adds a watcher; resolves, with what removes it, once every change committed from then on reaches it. */
  add(watcher: Watcher): Promise<() => void>;
  /** Ends every watcher (UNAVAILABLE) and stops listening. */
  stop(): Promise<void>;
}

/** The delivery_watchers row lives this long unless renewed, and is renewed this often. */
const PRESENCE_TTL_MS = 30_000;
const PRESENCE_RENEW_MS = 10_000;
/** The row is withdrawn this long after the last watcher left (a watcher that comes back soon finds it on). */
const LINGER_MS = 10_000;
/** Longest wait for the row's removal when the server stops. */
const STOP_WAIT_MS = 2_000;
/** Changes read from the channel and not yet handed to watchers, at most: past it, the watchers are ended. */
const MAX_PENDING = 100_000;
/** A watcher whose client leaves WATCH_BUFFER messages unread, taking none, this long is ended. */
export const STALL_MS = 10_000;
/** How often a full watcher is looked at for progress. */
const STALL_CHECK_MS = 100;
/** Changes matched against the watchers at a time (one read of their attempts). */
const DISPATCH_BATCH = 1_000;
/** Most characters of an attempt's response body in a stream update (ListAttempts has what was kept). */
const STREAM_BODY_CHARS = 1_024;
/** Webhooks whose namespace/event are remembered (they never change). */
const NAMES_KEPT = 10_000;

export function createWatchHub(deps: {
  db: Db;
  /** This server, in delivery_watchers. */
  server: string;
  logger: Logger;
  metrics: Pick<Metrics, "watchers" | "watcherEnded">;
}): WatchHub {
  const { db, server, metrics } = deps;
  const log = deps.logger.child({ component: "watch" });
  const watchers = new Set<Watcher>();
  const names = new Map<string, { namespace: string; event: string }>();
  /**
   * LISTEN, from the first watcher on, for as long as the server runs: the
   * listener postgres.js restores after a lost connection is this one, and
   * with no watcher (and so no row) nothing is sent on the channel anyway.
   */
  let listening: Promise<unknown> | undefined;
  let renewal: NodeJS.Timeout | undefined;
  /** When the row was last written: past PRESENCE_TTL_MS, changes may have gone unsent. */
  let renewedAt = 0;
  let idle: NodeJS.Timeout | undefined;
  /** The row's writes and removals, one at a time and in order: the last one is what holds. */
  let presence: Promise<unknown> = Promise.resolve();
  let pending: DeliveryChange[] = [];
  let draining = false;
  let stopped = false;

  const endAll = (code: status, details: string, reason: WatcherEndReason) => {
    for (const watcher of [...watchers]) watcher.end(code, details, reason);
  };

  function listen(): Promise<unknown> {
    let connections = 0;
    return db.$client.listen(CHANGES_CHANNEL, onNotify, () => {
      // Called at each (re)connection: after the first, changes were missed meanwhile.
      if (++connections > 1) {
        log.warn("the connection that follows delivery changes was lost; ending watchers");
        endAll(
          status.UNAVAILABLE,
          "the server lost its database connection and may have missed changes: watch again",
          "unavailable",
        );
      }
    });
  }

  /** Writes the row (then renews it every PRESENCE_RENEW_MS while there are watchers). */
  function announce(): Promise<void> {
    const written = presence.then(async () => {
      await announceWatchers(db, server, PRESENCE_TTL_MS);
      renewedAt = Date.now();
    });
    presence = written.catch(() => undefined);
    renewal ??= setInterval(() => {
      announce().catch((err: unknown) => {
        log.warn({ err }, "could not renew this server's watchers row");
        if (Date.now() - renewedAt > PRESENCE_TTL_MS - PRESENCE_RENEW_MS) {
          // The row may have expired: the triggers may have stopped sending.
          endAll(
            status.UNAVAILABLE,
            "the server could not keep its watch registered (the database is unavailable): watch again",
            "unavailable",
          );
        }
      });
    }, PRESENCE_RENEW_MS);
    renewal.unref();
    return written;
  }

  /** No watcher left: the row goes, and the triggers stop sending. */
  function withdraw(): Promise<void> {
    clearInterval(renewal);
    renewal = undefined;
    pending = [];
    const removed = presence.then(() => withdrawWatchers(db, server));
    presence = removed.catch((err: unknown) => {
      log.warn({ err }, "could not remove this server's watchers row (it expires by itself)");
    });
    return removed;
  }

  function onNotify(payload: string): void {
    if (watchers.size === 0) return;
    pending.push(...parseChanges(payload));
    if (pending.length > MAX_PENDING) {
      pending = [];
      log.warn("delivery changes came faster than this server could hand them to watchers; ending watchers");
      endAll(
        status.RESOURCE_EXHAUSTED,
        "the server could not keep up with the changes to stream: watch again, with narrower filters",
        "behind",
      );
      return;
    }
    if (!draining) void drain();
  }

  async function drain(): Promise<void> {
    draining = true;
    try {
      while (pending.length > 0) await dispatch(pending.splice(0, DISPATCH_BATCH));
    } catch (err) {
      log.warn({ err }, "could not read the details of delivery changes; ending watchers");
      pending = [];
      endAll(
        status.UNAVAILABLE,
        "the server could not read the changes' details (the database is unavailable): watch again",
        "unavailable",
      );
    } finally {
      draining = false;
    }
  }

  async function dispatch(changes: DeliveryChange[]): Promise<void> {
    const unknown = [...new Set(changes.map((c) => c.webhookId))].filter((id) => !names.has(id));
    if (unknown.length > 0) {
      if (names.size + unknown.length > NAMES_KEPT) names.clear();
      for (const [id, name] of await webhookNames(db, unknown)) names.set(id, name);
    }
    const current = [...watchers];
    const matched = changes
      .map((change) => {
        const name = names.get(change.webhookId);
        return { change, name, to: current.filter((w) => matches(w.filter, change, name)) };
      })
      .filter((m) => m.to.length > 0);
    const attempts = new Map(
      (
        await findAttempts(
          db,
          matched
            .filter((m) => m.change.attempted)
            .map((m) => ({ deliveryId: m.change.deliveryId, attemptNumber: m.change.attemptCount })),
        )
      ).map((a) => [`${a.deliveryId}/${a.attemptNumber}`, a]),
    );
    for (const { change, name, to } of matched) {
      const attempt = change.attempted ? attempts.get(`${change.deliveryId}/${change.attemptCount}`) : undefined;
      const update = toUpdate(change, name, attempt);
      // Clients with a full buffer hold the stream back (their own and others') while they take
      // messages, and for STALL_MS at most when they take none.
      const full = to.filter((w) => watchers.has(w)).flatMap((w) => w.send(update) ?? []);
      if (full.length > 0) await Promise.all(full);
    }
  }

  return {
    async add(watcher) {
      if (stopped) throw new Error("the watch hub is stopped");
      clearTimeout(idle);
      watchers.add(watcher);
      metrics.watchers(watchers.size);
      const remove = () => {
        if (!watchers.delete(watcher)) return;
        metrics.watchers(watchers.size);
        if (watchers.size === 0 && !stopped) {
          idle = setTimeout(() => void withdraw().catch(() => undefined), LINGER_MS);
          idle.unref();
        }
      };
      try {
        listening ??= listen().catch((err: unknown) => {
          listening = undefined;
          throw err;
        });
        await listening;
        // Written for each new watcher: after the database was away, the row may have expired.
        await announce();
      } catch (err) {
        remove();
        throw err;
      }
      return remove;
    },
    async stop() {
      stopped = true;
      clearTimeout(idle);
      endAll(
        status.UNAVAILABLE,
        "the server is shutting down: watch again (another server, or this one once back)",
        "shutdown",
      );
      // With the database away this would wait for it: never longer than this (the row expires by itself).
      await Promise.race([withdraw().catch(() => undefined), sleep(STOP_WAIT_MS, undefined, { ref: false })]);
    },
  };
}

function matches(filter: WatchFilter, change: DeliveryChange, name: { namespace: string } | undefined): boolean {
  return (
    (filter.webhookId === undefined || filter.webhookId === change.webhookId) &&
    (filter.eventId === undefined || filter.eventId === change.eventId) &&
    (filter.namespace === undefined || filter.namespace === name?.namespace)
  );
}

function toUpdate(
  change: DeliveryChange,
  name: { namespace: string; event: string } | undefined,
  attempt: AttemptRow | undefined,
): WatchDeliveriesResponse {
  // Small messages: the body cut short, no response headers (ListAttempts has them).
  const converted =
    attempt === undefined
      ? undefined
      : {
          ...toAttempt(attempt),
          responseBody: (attempt.responseBody ?? "").slice(0, STREAM_BODY_CHARS),
          responseHeaders: {},
        };
  return {
    deliveryId: change.deliveryId,
    webhookId: change.webhookId,
    eventId: change.eventId,
    namespace: name?.namespace ?? "",
    event: name?.event ?? "",
    status: toDeliveryStatus(change.status),
    attemptCount: change.attemptCount,
    attempt: converted,
    nextAttemptAt: change.nextAttemptAt,
    errorMessage: change.error ?? "",
    changedAt: change.changedAt,
  };
}

/**
 * WatchDeliveries: checks the filters, then streams the changes that match
 * them until the client cancels or the server ends the stream. Resolves with
 * how it ended.
 */
export async function watchDeliveries(
  deps: ApiDeps,
  call: ServerWritableStream<WatchDeliveriesRequest, WatchDeliveriesResponse>,
): Promise<status> {
  const req = call.request;
  const filter: WatchFilter = {
    namespace: req.namespace === "" ? undefined : checkName("namespace", req.namespace),
    webhookId: req.webhookId === "" ? undefined : checkId("webhook_id", req.webhookId),
    eventId: req.eventId === "" ? undefined : checkId("event_id", req.eventId),
  };
  const [webhook, event] = await Promise.all([
    filter.webhookId === undefined ? undefined : findWebhook(deps.db, filter.webhookId),
    filter.eventId === undefined ? undefined : findEvent(deps.db, filter.eventId),
  ]);
  if (filter.webhookId !== undefined && webhook === undefined) {
    throw notFound(`webhook_id: webhook ${filter.webhookId} not found`);
  }
  if (filter.eventId !== undefined && event === undefined)
    throw notFound(`event_id: event ${filter.eventId} not found`);
  const { code } = await streamChanges(
    { hub: deps.watch, metrics: deps.metrics },
    call,
    filter,
    deps.config.watchBuffer,
  );
  return code;
}

/** Streams to the call once the hub follows changes for it. */
function streamChanges(
  { hub, metrics }: Pick<ApiDeps, "metrics"> & { hub: WatchHub },
  call: ServerWritableStream<WatchDeliveriesRequest, WatchDeliveriesResponse>,
  filter: WatchFilter,
  buffer: number,
): Promise<{ code: status; reason?: WatcherEndReason }> {
  return new Promise((resolve, reject) => {
    let ended = false;
    let remove: (() => void) | undefined;
    /** Set while `send` waits for the client to take some of what it has: ends the wait. */
    let stalled = (): void => undefined;
    const finish = (result: { code: status; reason?: WatcherEndReason }) => {
      if (ended) return;
      ended = true;
      remove?.();
      stalled();
      resolve(result);
    };
    const watcher: Watcher = {
      filter,
      send(update) {
        if (ended) return undefined;
        call.write(update);
        // Messages written and not yet taken by the client (HTTP/2 flow control holds them here).
        if (call.writableLength < buffer) return undefined;
        // Full: wait until the client has taken some of it; end it if it takes none for STALL_MS.
        return new Promise<void>((resolve) => {
          let length = call.writableLength;
          let progressAt = Date.now();
          const timer = setInterval(() => {
            if (call.writableLength < length) {
              length = call.writableLength;
              progressAt = Date.now();
            }
            if (length < buffer / 2) stalled();
            else if (Date.now() - progressAt >= STALL_MS) {
              watcher.end(
                status.RESOURCE_EXHAUSTED,
                `the stream left ${buffer} changes unread for ${STALL_MS / 1000}s (WATCH_BUFFER): read faster or narrow the filters, then watch again`,
                "behind",
              );
            }
          }, STALL_CHECK_MS);
          stalled = () => {
            clearInterval(timer);
            stalled = () => undefined;
            resolve();
          };
        });
      },
      end(code, details, reason) {
        if (ended) return;
        metrics.watcherEnded(reason);
        // The status follows the messages already written.
        call.emit("error", { code, details, metadata: new Metadata() });
        finish({ code, reason });
      },
    };
    call.on("cancelled", () => {
      finish({ code: status.CANCELLED });
    });
    // Cancelled while its filters were checked: its 'cancelled' event has passed.
    if (call.cancelled) {
      finish({ code: status.CANCELLED });
      return;
    }
    hub.add(watcher).then(
      (removeWatcher) => {
        remove = removeWatcher;
        if (ended) {
          removeWatcher();
          return;
        }
        // The response headers say that the stream is live.
        call.sendMetadata(new Metadata());
      },
      (err: unknown) => {
        ended = true;
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
