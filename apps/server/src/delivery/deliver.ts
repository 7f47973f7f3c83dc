import type { JobHelpers } from "graphile-worker";
import { loadDelivery, recordAttempt, type LoadedDelivery } from "../db/attempts.js";
import type { Db } from "../db/client.js";
import { closeDelivery } from "../db/deliveries.js";
import type { Logger } from "../observability/logger.js";
import { attemptResult, type Metrics } from "../observability/metrics.js";
import type { HttpClient, OutgoingRequest } from "./http-client.js";
import { nextStep, parseRetryAfter, type RetryPolicy } from "./retry-policy.js";
import { signPayload } from "./signing.js";

export interface DeliverDeps {
  db: Db;
  http: HttpClient;
  policy: RetryPolicy;
  userAgent: string;
  logger: Logger;
  metrics: Pick<Metrics, "deliveryOutcome" | "attemptFinished" | "deliverySucceeded" | "inFlight">;
}

/** The delivery task: one HTTP attempt, recorded with its outcome and what follows. */
export function createDeliverTask(
  deps: DeliverDeps,
): (payload: { deliveryId: string; attempt: number }, helpers: JobHelpers) => Promise<void> {
  const { db, http, policy, logger, metrics } = deps;
  return async ({ deliveryId, attempt }, helpers) => {
    const loadedAt = performance.now();
    const delivery = await loadDelivery(db, deliveryId);
    if (!delivery) {
      logger.warn({ deliveryId }, "job for an unknown delivery; dropping it");
      return;
    }
    if (delivery.status !== "pending" && delivery.status !== "retrying") return;
    const attemptNumber = delivery.attemptCount + 1;
    if (attempt !== attemptNumber) {
      // A job that ran twice (its worker was taken for dead): its attempt was made.
      logger.debug({ deliveryId, attempt, expected: attemptNumber }, "stale delivery job; dropping it");
      return;
    }
    const ids = { deliveryId, webhookId: delivery.webhookId, eventId: delivery.eventId, attempt: attemptNumber };
    if (!delivery.active || delivery.deletedAt) {
      // Normally cancelled with the webhook; this job was already running then.
      if (await closeDelivery(db, deliveryId, "cancelled", "the webhook was deactivated or unregistered")) {
        metrics.deliveryOutcome("cancelled");
        logger.info({ ...ids, status: "cancelled" }, "delivery cancelled");
      }
      return;
    }
    if (Date.now() >= delivery.expiresAt.getTime()) {
      if (await closeDelivery(db, deliveryId, "expired", `the event expired before attempt ${attemptNumber}`)) {
        metrics.deliveryOutcome("expired");
        logger.info({ ...ids, status: "expired" }, "delivery expired");
      }
      return;
    }

    const outcome = await metrics.inFlight(() =>
      http.send(buildRequest(delivery, deps.userAgent, helpers.abortSignal)),
    );
    metrics.attemptFinished(
      attemptResult(outcome.statusCode, outcome.timedOut === true, outcome.permanent === true),
      outcome.durationMs / 1000,
    );
    const now = new Date();
    let status: "succeeded" | "retrying" | "failed" | "expired" = "succeeded";
    let nextAttemptAt: Date | null = null;
    if (outcome.permanent) {
      // Refused before connecting (the destination is not allowed): retrying cannot help.
      status = "failed";
    } else if (outcome.error !== undefined) {
      const honoursRetryAfter = outcome.statusCode === 429 || outcome.statusCode === 503;
      const step = nextStep(policy, {
        attemptNumber,
        maxAttempts: delivery.maxAttempts,
        now,
        expiresAt: delivery.expiresAt,
        retryAfterMs: honoursRetryAfter ? parseRetryAfter(outcome.retryAfter, now) : undefined,
      });
      status = step.kind === "retry" ? "retrying" : step.kind;
      nextAttemptAt = step.kind === "retry" ? step.at : null;
    }
    const updated = await recordAttempt(db, {
      deliveryId,
      attemptNumber,
      startedAt: outcome.startedAt,
      durationMs: outcome.durationMs,
      responseCode: outcome.statusCode ?? null,
      responseBody: outcome.responseBody ?? null,
      errorMessage: outcome.error ?? null,
      status,
      nextAttemptAt,
    });
    // Not updated: the delivery was cancelled meanwhile, and counted by whoever cancelled it.
    if (updated) metrics.deliveryOutcome(status);
    if (updated && status === "succeeded") {
      metrics.deliverySucceeded((delivery.eventAgeMs + performance.now() - loadedAt) / 1000);
    }
    logger.info(
      {
        ...ids,
        status: updated ? status : "cancelled",
        responseCode: outcome.statusCode,
        durationMs: outcome.durationMs,
        error: outcome.error,
        nextAttemptAt: nextAttemptAt?.toISOString(),
      },
      "delivery attempt",
    );
  };
}

/**
 * The webhook's method, URL and custom headers, the payload as the body (none
 * for GET), and the Standard Webhooks headers: webhook-id is the delivery id,
 * the same on every attempt, so receivers can drop repeats.
 */
export function buildRequest(d: LoadedDelivery, userAgent: string, signal?: AbortSignal): OutgoingRequest {
  const body = d.method === "GET" ? undefined : d.payload;
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = { "user-agent": userAgent };
  if (body !== undefined) headers["content-type"] = "application/json";
  // Custom headers may replace user-agent and content-type; the names that
  // could clash with ours are refused when a webhook is registered.
  for (const [name, value] of Object.entries(d.headers)) headers[name.toLowerCase()] = value;
  headers["webhook-id"] = d.id;
  headers["webhook-timestamp"] = String(timestamp);
  headers["webhook-signature"] = signPayload(d.signingSecret, d.id, timestamp, body ?? "");
  return { url: d.url, method: d.method, headers, body, timeoutMs: d.timeout * 1000, signal };
}
