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
/** Listening stops this long after the last watcher left (a watcher that comes back soon finds it on). */
const LINGER_MS = 10_000;
/** Longest wait for UNLISTEN and the row's removal when listening stops. */
const RELEASE_WAIT_MS = 2_000;
/** Changes read from the channel and not yet handed to watchers, at most: past it, the watchers are ended. */
const MAX_PENDING = 100_000;
/** A watcher whose client leaves WATCH_BUFFER messages unread this long is ended. */
export const STALL_MS = 10_000;
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
  let listening: Promise<{ unlisten(): Promise<void> }> | undefined;
  let releasing: Promise<void> = Promise.resolve();
  let renewal: NodeJS.Timeout | undefined;
  let idle: NodeJS.Timeout | undefined;
  let pending: DeliveryChange[] = [];
  let draining = false;
  let stopped = false;

  const endAll = (code: status, details: string, reason: WatcherEndReason) => {
    for (const watcher of [...watchers]) watcher.end(code, details, reason);
  };

  async function listen(): Promise<{ unlisten(): Promise<void> }> {
    await releasing;
    let connections = 0;
    const subscription = await db.$client.listen(CHANGES_CHANNEL, onNotify, () => {
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
    renewal = setInterval(() => {
      announceWatchers(db, server, PRESENCE_TTL_MS).catch((err: unknown) => {
        log.warn({ err }, "could not renew this server's watchers row");
      });
    }, PRESENCE_RENEW_MS);
    renewal.unref();
    return subscription;
  }

  async function release(): Promise<void> {
    const subscription = listening;
    listening = undefined;
    clearInterval(renewal);
    pending = [];
    if (subscription === undefined) return;
    const done = (async () => {
      await (await subscription.catch(() => undefined))?.unlisten();
      await withdrawWatchers(db, server);
    })().catch((err: unknown) => {
      log.warn({ err }, "could not stop following delivery changes cleanly");
    });
    // With the database away, UNLISTEN waits for it: never longer than this (the row expires by itself).
    releasing = Promise.race([done, sleep(RELEASE_WAIT_MS, undefined, { ref: false })]);
    await releasing;
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
    const matched = changes
      .map((change) => {
        const name = names.get(change.webhookId);
        return { change, name, to: [...watchers].filter((w) => matches(w.filter, change, name)) };
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
      for (const watcher of to) {
        if (!watchers.has(watcher)) continue;
        // A client with a full buffer holds the stream back (its own and others'), for STALL_MS at most.
        const full = watcher.send(update);
        if (full !== undefined) await full;
      }
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
        if (watchers.size === 0) {
          idle = setTimeout(() => void release(), LINGER_MS);
          idle.unref();
        }
      };
      try {
        listening ??= listen();
        await listening;
      } catch (err) {
        listening = undefined;
        remove();
        throw err;
      }
      try {
        // Renewed here too: after the database was away, the row may have expired.
        await announceWatchers(db, server, PRESENCE_TTL_MS);
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
      await release();
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
  const converted = attempt === undefined ? undefined : toAttempt(attempt);
  if (converted !== undefined && converted.responseBody.length > STREAM_BODY_CHARS) {
    converted.responseBody = converted.responseBody.slice(0, STREAM_BODY_CHARS);
  }
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
    /** Set while `send` waits for the client to take what it has: ends the wait. */
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
        return new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            watcher.end(
              status.RESOURCE_EXHAUSTED,
              `the stream left ${buffer} changes unread for ${STALL_MS / 1000}s (WATCH_BUFFER): read faster or narrow the filters, then watch again`,
              "behind",
            );
          }, STALL_MS);
          stalled = () => {
            clearTimeout(timer);
            call.off("drain", stalled);
            stalled = () => undefined;
            resolve();
          };
          // The buffer is past the stream's high-water mark: 'drain' comes once the client took it all.
          call.once("drain", stalled);
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
