import {
  deliveryStatusToJSON,
  type Attempt,
  type WatchDeliveriesResponse,
  disabledReasonToJSON,
  orderingToJSON,
  signatureSchemeToJSON,
  type Delivery,
  type DeliveryCount,
  type Event,
  type Webhook,
} from "@httpqueue/sdk";

/**
 * What --json prints: every field present (scripts need not guess defaults),
 * statuses by enum name, times in ISO 8601 (null when unset).
 */

const iso = (date: Date | undefined) => date?.toISOString() ?? null;

export function webhookJson(w: Webhook) {
  return {
    id: w.id,
    namespace: w.namespace,
    event: w.event,
    filter: w.filter,
    url: w.url,
    method: w.method,
    headers: w.headers,
    timeout: w.timeout,
    active: w.active,
    description: w.description,
    createdAt: iso(w.createdAt),
    updatedAt: iso(w.updatedAt),
    retryPolicy: w.retryPolicy ?? null,
    rateLimitPerSecond: w.rateLimitPerSecond,
    maxInFlight: w.maxInFlight,
    ordering: orderingToJSON(w.ordering),
    disabledReason: disabledReasonToJSON(w.disabledReason),
    disabledAt: iso(w.disabledAt),
    failingSince: iso(w.failingSince),
    pacePerSecond: w.pacePerSecond,
    pausedUntil: iso(w.pausedUntil),
    signatureScheme: signatureSchemeToJSON(w.signatureScheme),
    previousSecretExpiresAt: iso(w.previousSecretExpiresAt),
  };
}

export function eventJson(e: Event) {
  return {
    id: e.id,
    namespace: e.namespace,
    event: e.event,
    payload: e.payload,
    ttlSeconds: e.ttlSeconds,
    metadata: e.metadata,
    idempotencyKey: e.idempotencyKey,
    orderingKey: e.orderingKey,
    createdAt: iso(e.createdAt),
    expiresAt: iso(e.expiresAt),
    /** When retention removed the payload (then ""); null while it is kept. */
    payloadRemovedAt: iso(e.payloadRemovedAt),
  };
}

export function deliveryJson(d: Delivery) {
  return {
    id: d.id,
    webhookId: d.webhookId,
    eventId: d.eventId,
    status: deliveryStatusToJSON(d.status),
    attemptCount: d.attemptCount,
    maxAttempts: d.maxAttempts,
    responseCode: d.responseCode,
    responseBody: d.responseBody,
    errorMessage: d.errorMessage,
    createdAt: iso(d.createdAt),
    lastAttemptAt: iso(d.lastAttemptAt),
    nextAttemptAt: iso(d.nextAttemptAt),
    completedAt: iso(d.completedAt),
  };
}

export function countJson(c: DeliveryCount) {
  return { status: deliveryStatusToJSON(c.status), count: c.count };
}

export function attemptJson(a: Attempt) {
  return {
    deliveryId: a.deliveryId,
    attempt: a.attempt,
    startedAt: iso(a.startedAt),
    durationMs: a.durationMs,
    requestMethod: a.requestMethod,
    requestUrl: a.requestUrl,
    requestHeaders: a.requestHeaders,
    responseCode: a.responseCode,
    responseHeaders: a.responseHeaders,
    responseBody: a.responseBody,
    errorMessage: a.errorMessage,
  };
}

/** One line of `tail --json`. */
export function changeJson(c: WatchDeliveriesResponse) {
  return {
    changedAt: iso(c.changedAt),
    deliveryId: c.deliveryId,
    webhookId: c.webhookId,
    eventId: c.eventId,
    namespace: c.namespace,
    event: c.event,
    status: deliveryStatusToJSON(c.status),
    attemptCount: c.attemptCount,
    attempt: c.attempt ? attemptJson(c.attempt) : null,
    nextAttemptAt: iso(c.nextAttemptAt),
    errorMessage: c.errorMessage,
  };
}
