import { setTimeout as sleep } from "node:timers/promises";
import { recordOutcome, type Outcome } from "../db/attempts.js";
import type { Db } from "../db/client.js";
import { fetchDueDeliveries, finishRunner, startRunner, type DueDelivery } from "../db/runners.js";
import { CANCELLED_MESSAGE } from "../db/webhooks.js";
import { isDatabaseUnavailable, isTransientConflict } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { attemptResult, type Metrics } from "../observability/metrics.js";
import { SecretUnavailableError, type SecretCipher } from "../secrets/cipher.js";
import { signWebhook } from "@httpqueue/sdk/signing";
import type { AttemptOutcome, HttpClient, OutgoingRequest } from "./http-client.js";
import { Pace } from "./pace.js";
import { judge, type RetryPolicy, type Verdict } from "./retry-policy.js";

export interface RunnerDeps {
  db: Db;
  http: HttpClient;
  policy: RetryPolicy;
  userAgent: string;
  logger: Logger;
  metrics: Pick<
    Metrics,
    "deliveryOutcome" | "attemptFinished" | "deliverySucceeded" | "inFlight" | "deliveryPostponed"
  >;
  /** Most attempts in flight to one webhook (WEBHOOK_MAX_IN_FLIGHT), unless the webhook sets its own. */
  maxInFlight: number;
  /** The receiver answered 410 Gone: deactivate the webhook (see delivery/webhook-health.ts). */
  webhookGone(webhookId: string): Promise<unknown>;
  /** Opens the stored signing secrets. */
  secrets: SecretCipher;
}

/**
 * A runner hands the webhook on (to a job due now) after this long, so that
 * webhooks waiting for one of the worker's slots get their turn.
 */
const TURN_MS = 5_000;
/** Waits between tries of a statement while the database is unreachable: doubling up to the last. */
const RETRY_MS = { first: 250, max: 5_000 } as const;
/** A pause (Retry-After) longer than this lets the webhook go, with a wake-up job for its end. */
const RELEASE_WHEN_PAUSED_MS = 1_000;

/**
 * Delivers what is due for one webhook, on this server alone (the row it
 * holds in webhook_runners keeps other servers off it), at most
 * `maxInFlight` attempts at once: a slow or hanging receiver holds its own
 * runner and one worker slot, never the others'. Due deliveries are read a
 * page at a time while earlier ones are in flight; each outcome is recorded
 * (statements shared with other runners) before its delivery is read again.
 * It ends when nothing is due (the statement that lets go schedules the next
 * wake-up), when its turn is over or the worker stops (handing the webhook to
 * a job due now), always after its attempts in flight are recorded.
 *
 * It keeps to the webhook's pace (see delivery/pace.ts): its rate limit, the
 * pace an overloaded receiver was slowed to, a pause the receiver asked for;
 * deliveries held back meanwhile are postponed, not failed. A webhook that
 * keeps order gets only the first delivery of each ordering key from the
 * reads (the statements see to it), so that the next one of a key is read
 * once the one before it has ended.
 */
export class WebhookRunner {
  private readonly log: Logger;
  private readonly page: number;
  /** Read, not yet started. */
  private queue: DueDelivery[] = [];
  /** Attempts in flight (HTTP): what the cap counts. */
  private readonly inFlight = new Set<string>();
  /**
   * Started, outcome not yet committed (those in flight included): not to be
   * read again, and awaited before letting go.
   */
  private readonly recording = new Set<string>();
  private fetching = false;
  /** The last read returned less than it asked for: nothing more was due then. */
  private exhausted = false;
  /** Jobs for this webhook that came while it ran: something new may be due. */
  private nudges = 0;
  private seenNudges = 0;
  private draining = false;
  private failure: Error | undefined;
  private readonly startedAt = performance.now();
  private wake: () => void = () => undefined;
  /** No more reads until then (they failed). */
  private fetchAfter = 0;
  /** Nothing starts before then (the webhook's pace). */
  private startAfter = 0;
  private pace = new Pace({ pausedUntil: null, pace: null, nextSendAt: null });
  /** The webhook's own cap on attempts in flight (0: the server's) and ordering, as last read. */
  private ownCap = 0;
  private ordered = false;
  /** The receiver answered 410 Gone: nothing more is sent (the webhook is being deactivated). */
  private endpointGone = false;
  /** The delivery at the head of the queue waited for the pace: counted once when it starts. */
  private held: { id: string; reason: "rate_limit" | "paused" } | undefined;

  constructor(
    readonly webhookId: string,
    /** The graphile-worker pool whose job runs this. */
    readonly owner: string,
    private readonly deps: RunnerDeps,
    /** Aborts attempts in flight: the worker stops for good. */
    private readonly signal: AbortSignal,
  ) {
    this.log = deps.logger.child({ webhookId });
    this.page = Math.max(256, deps.maxInFlight * 8);
  }

  /** A job for this webhook came while it runs: read again, something new may be due. */
  nudge(): void {
    this.nudges++;
    this.wake();
  }

  /** Start nothing more; end once the attempts in flight are recorded, handing the webhook on. */
  drain(): void {
    this.draining = true;
    this.wake();
  }

  /** The worker stops for good (its signal is aborted): end now, without waiting for attempts in flight. */
  abort(): void {
    this.wake();
  }

  /** Runs until the webhook is let go (or was taken by another server). */
  async run(): Promise<void> {
    for (;;) {
      const nudges = this.nudges;
      const first = await this.retrying("start", () =>
        startRunner(this.deps.db, { webhookId: this.webhookId, owner: this.owner, limit: this.page }),
      );
      if (first === undefined) return; // another server delivers to it, and sees what is due
      this.pace = new Pace(first.pace);
      this.queue = [];
      this.take(first.due);
      this.exhausted = first.due.length < this.page;
      this.seenNudges = nudges;
      const end = await this.work();
      if (this.failure !== undefined) throw this.failure;
      // A job that came while we let go was taken for ours: take the webhook again.
      if (end !== "released" || this.nudges === nudges) return;
    }
  }

  /**
   * Attempts due deliveries until the webhook is let go: "released" (nothing
   * was due), "handed on" (a job due now has it), "stopped" (the worker
   * stopped while the database was away).
   */
  private async work(): Promise<"released" | "handed on" | "stopped"> {
    for (;;) {
      if (this.signal.aborted) {
        // Attempts still in flight are made again later (at least once); hand the webhook on if the database lets us.
        await finishRunner(this.deps.db, this.finishRequest("yield", false)).catch(() => undefined);
        return "stopped";
      }
      if (this.endpointGone) {
        // Its deliveries are cancelled with it: none is read or started again.
        this.queue = [];
        this.exhausted = true;
        this.seenNudges = this.nudges;
      }
      const stopping = this.draining || performance.now() - this.startedAt > TURN_MS;
      const cap = this.cap();
      let hold: ReturnType<Pace["hold"]> = undefined;
      while (!stopping && this.queue.length > 0 && this.inFlight.size < cap) {
        const next = this.queue[0] as DueDelivery;
        hold = needsRequest(next) ? this.pace.hold(Date.now()) : undefined;
        if (hold !== undefined) {
          if (this.held?.id !== next.id) this.held = { id: next.id, reason: hold.reason };
          break;
        }
        this.start(this.queue.shift() as DueDelivery);
      }
      this.startAfter = hold === undefined ? 0 : Date.now() + hold.ms;
      const more = !this.exhausted || this.nudges !== this.seenNudges;
      if (!stopping && !this.fetching && more && this.queue.length < cap * 2) {
        if (Date.now() >= this.fetchAfter) void this.fetch();
      }
      const idle = this.recording.size === 0 && !this.fetching;
      // Paused for long: let go (the statement that does schedules a wake-up for the pause's end).
      const paused = hold?.reason === "paused" && hold.ms > RELEASE_WHEN_PAUSED_MS;
      if (idle && (stopping || paused || (this.queue.length === 0 && !more))) {
        if (paused) for (let i = 0; i < this.queue.length; i++) this.deps.metrics.deliveryPostponed("paused");
        const mode = this.failure !== undefined ? "abandon" : stopping ? "yield" : "done";
        const finished = await this.retrying("finish", () =>
          finishRunner(this.deps.db, this.finishRequest(mode, paused)),
        );
        if (finished === undefined) return "stopped";
        if (finished.released) return stopping ? "handed on" : "released";
        // Deliveries are due that the reads did not see (pushed meanwhile through another server): read on.
        this.exhausted = false;
        continue;
      }
      await this.changed();
    }
  }

  private finishRequest(mode: "done" | "yield" | "abandon", paused: boolean) {
    return { webhookId: this.webhookId, owner: this.owner, mode, paused, pace: this.pace.state(Date.now()) };
  }

  /** Attempts in flight at most. */
  private cap(): number {
    return this.ownCap > 0 ? this.ownCap : this.deps.maxInFlight;
  }

  /** Queues deliveries read, and takes the webhook's settings from them (they may have changed). */
  private take(rows: DueDelivery[]): void {
    const latest = rows[rows.length - 1];
    if (latest !== undefined) {
      this.pace.rateLimit = latest.rateLimitPerSecond;
      this.ownCap = latest.maxInFlight;
      this.ordered = latest.ordering === "by_key";
    }
    this.queue.push(...rows);
  }

  /** Resolves at the next change: an attempt recorded, a read done, a nudge, a drain, or a retry's or the pace's time. */
  private changed(): Promise<void> {
    return new Promise((resolve) => {
      // A read's retry time counts once it is ahead; the pace's, even if it has just passed.
      const now = Date.now();
      const times = [this.fetchAfter > now ? this.fetchAfter : 0, this.startAfter].filter((t) => t > 0);
      const timer = times.length > 0 ? setTimeout(resolve, Math.max(0, Math.min(...times) - now)) : undefined;
      this.wake = () => {
        clearTimeout(timer);
        this.wake = () => undefined;
        resolve();
      };
    });
  }

  private async fetch(): Promise<void> {
    this.fetching = true;
    this.seenNudges = this.nudges;
    try {
      const held = new Set([...this.recording, ...this.queue.map((d) => d.id)]);
      const rows = await fetchDueDeliveries(this.deps.db, {
        webhookId: this.webhookId,
        limit: this.page,
        exclude: [...held],
      });
      this.take(rows.filter((row) => !held.has(row.id)));
      this.exhausted = rows.length < this.page;
      this.fetchAfter = 0;
    } catch (err) {
      if (!isDatabaseUnavailable(err)) this.fail(err);
      else this.log.warn({ err }, "could not read due deliveries; will try again");
      this.fetchAfter = Date.now() + RETRY_MS.max;
    } finally {
      this.fetching = false;
      this.wake();
    }
  }

  private start(d: DueDelivery): void {
    if (needsRequest(d)) {
      if (this.held?.id === d.id) this.deps.metrics.deliveryPostponed(this.held.reason);
      this.pace.take(Date.now());
    }
    this.held = undefined;
    this.inFlight.add(d.id);
    this.recording.add(d.id);
    this.attempt(d)
      .catch((err: unknown) => {
        this.fail(err);
      })
      .finally(() => {
        this.inFlight.delete(d.id);
        this.recording.delete(d.id);
        // Ordered: the next delivery of its key may be due now that this one is recorded.
        if (this.ordered) this.exhausted = false;
        this.wake();
      });
  }

  /** The request is done: its slot is free for the next one while the outcome is recorded. */
  private sent(d: DueDelivery): void {
    if (this.inFlight.delete(d.id)) this.wake();
  }

  /** Something other than the database being away went wrong: stop, and let graphile-worker retry the job. */
  private fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new Error(String(err));
    this.draining = true;
    this.wake();
  }

  /** One attempt of one delivery (or its end without one), recorded. */
  private async attempt(d: DueDelivery): Promise<void> {
    const { http, policy, metrics, userAgent, secrets } = this.deps;
    const attemptNumber = d.attemptCount + 1;
    const ids = { deliveryId: d.id, eventId: d.eventId, attempt: attemptNumber };
    const end = closing(d);
    if (end !== undefined) {
      await this.close(d, end.status, end.errorMessage);
      return;
    }
    const readAt = performance.now();
    const schedule = d.retrySchedule?.map((seconds) => seconds * 1000);
    let request: OutgoingRequest;
    let unsigned: string | undefined;
    try {
      request = buildRequest(d, userAgent, secrets);
    } catch (err) {
      if (!(err instanceof SecretUnavailableError)) throw err;
      // Nothing is sent unsigned: the attempt fails, and is retried on schedule, until a key that opens it is configured.
      unsigned = err.message;
      request = { url: d.url, method: d.method, headers: {}, body: undefined, timeoutMs: 0 };
    }
    let outcome: AttemptOutcome;
    let verdict: Verdict;
    try {
      outcome =
        unsigned === undefined
          ? await metrics.inFlight(() => http.send(request))
          : { startedAt: new Date(), durationMs: 0, error: unsigned };
      verdict = judge(schedule ? { ...policy, schedule } : policy, outcome, {
        attemptNumber,
        maxAttempts: d.maxAttempts,
        expiresAt: new Date(d.expiresAt),
      });
      // Before the slot is free: nothing more starts against a pace or a pause the answer asks for.
      this.heed(verdict.endpoint);
    } finally {
      this.sent(d);
    }
    metrics.attemptFinished(
      attemptResult(outcome.statusCode, outcome.timedOut === true, outcome.blocked === true),
      outcome.durationMs / 1000,
    );
    const updated = await this.record({
      deliveryId: d.id,
      resends: d.resends,
      attemptNumber,
      startedAt: outcome.startedAt,
      durationMs: outcome.durationMs,
      responseCode: outcome.statusCode ?? null,
      responseBody: outcome.responseBody ?? null,
      responseHeaders: outcome.responseHeaders ?? null,
      request: { method: request.method, url: request.url, headers: request.headers },
      errorMessage: verdict.errorMessage,
      status: verdict.status,
      nextAttemptAt: verdict.nextAttemptAt,
    });
    if (updated === undefined) return;
    if (verdict.endpoint?.kind === "gone") {
      await this.retrying("deactivate", () => this.deps.webhookGone(this.webhookId));
      // Deactivated, its deliveries cancelled: one pushed meanwhile is read as its webhook's and cancelled too.
      this.endpointGone = false;
    }
    // Not updated: the delivery was cancelled meanwhile, and counted by whoever cancelled it.
    if (updated) metrics.deliveryOutcome(verdict.status);
    if (updated && verdict.status === "succeeded") {
      metrics.deliverySucceeded((d.eventAgeMs + performance.now() - readAt) / 1000);
    }
    if (!this.log.isLevelEnabled("info")) return;
    this.log.info(
      {
        ...ids,
        status: updated ? verdict.status : "cancelled",
        responseCode: outcome.statusCode,
        durationMs: outcome.durationMs,
        error: verdict.errorMessage ?? undefined,
        nextAttemptAt: verdict.nextAttemptAt?.toISOString(),
      },
      "delivery attempt",
    );
  }

  /** What the answer says of the endpoint sets its pace, or (gone) ends the sending. */
  private heed(signal: Verdict["endpoint"]): void {
    if (signal === undefined) return;
    if (signal.kind === "gone") this.endpointGone = true;
    else if (signal.kind === "ok") this.pace.ok();
    else if (signal.kind === "slow") this.pace.slow(Date.now());
    else this.pace.pause(signal.until.getTime());
  }

  private async close(d: DueDelivery, status: "cancelled" | "expired" | "failed", errorMessage: string): Promise<void> {
    const updated = await this.record({
      deliveryId: d.id,
      resends: d.resends,
      attemptCount: d.attemptCount,
      status,
      errorMessage,
    });
    if (!updated) return;
    this.deps.metrics.deliveryOutcome(status);
    this.log.info({ deliveryId: d.id, eventId: d.eventId, status }, `delivery ${status}`);
  }

  /** Records an outcome, trying again while the database is away; undefined if the worker stopped first. */
  private record(outcome: Outcome): Promise<boolean | undefined> {
    return this.retrying("record", () => recordOutcome(this.deps.db, outcome));
  }

  /**
   * Runs a statement, trying again while the database cannot be reached or
   * it met another one (deadlock); other errors are thrown. Undefined when
   * the worker stops meanwhile.
   */
  private async retrying<T>(what: string, run: () => Promise<T>): Promise<T | undefined> {
    for (let delay: number = RETRY_MS.first; ; delay = Math.min(delay * 2, RETRY_MS.max)) {
      try {
        return await run();
      } catch (err) {
        if (!isDatabaseUnavailable(err) && !isTransientConflict(err)) throw err;
        if (this.signal.aborted) return undefined;
        this.log.warn({ err, statement: what, retryInMs: delay }, "the database is unavailable; will try again");
        try {
          await sleep(delay, undefined, { signal: this.signal });
        } catch {
          return undefined;
        }
      }
    }
  }
}

/**
 * How the delivery ends without a request, when it does: its webhook or event
 * is gone, or it has no attempt left; undefined when its attempt sends one.
 */
function closing(d: DueDelivery): { status: "cancelled" | "expired" | "failed"; errorMessage: string } | undefined {
  if (!d.active || d.deleted) {
    // Normally cancelled with the webhook; this one was read just before.
    return { status: "cancelled", errorMessage: CANCELLED_MESSAGE };
  }
  if (Date.now() >= d.expiresAt) {
    return { status: "expired", errorMessage: `the event expired before attempt ${d.attemptCount + 1}` };
  }
  if (d.attemptCount >= d.maxAttempts) {
    // The webhook's retry policy was changed to fewer attempts than this delivery has made.
    return { status: "failed", errorMessage: `its ${d.attemptCount} attempts are all the retry policy allows` };
  }
  return undefined;
}

/** Whether attempting the delivery sends a request (one that only ends it takes no slot of the pace). */
const needsRequest = (d: DueDelivery): boolean => closing(d) === undefined;

/**
 * The webhook's method, URL and custom headers, the payload as the body (none
 * for GET), and the Standard Webhooks headers: webhook-id is the delivery id,
 * the same on every attempt, so receivers can drop repeats. During a
 * rotation's overlap webhook-signature carries a signature with each secret,
 * the new one first.
 */
export function buildRequest(d: DueDelivery, userAgent: string, secrets: SecretCipher): OutgoingRequest {
  const body = d.method === "GET" ? undefined : d.payload;
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = { "user-agent": userAgent };
  if (body !== undefined) headers["content-type"] = "application/json";
  // Custom headers may replace user-agent and content-type; the names that
  // could clash with ours are refused when a webhook is registered.
  for (const [name, value] of Object.entries(d.headers)) headers[name.toLowerCase()] = value;
  headers["webhook-id"] = d.id;
  headers["webhook-timestamp"] = String(timestamp);
  const keys = [secrets.open(d.signingSecret)];
  if (d.previousSigningSecret !== null && (d.previousSecretExpiresAt ?? 0) > Date.now()) {
    keys.push(secrets.open(d.previousSigningSecret));
  }
  headers["webhook-signature"] = signWebhook(keys, d.id, timestamp, body ?? "");
  return { url: d.url, method: d.method, headers, body, timeoutMs: d.timeout * 1000 };
}
