import {
  DeliveryStatus,
  DisabledReason,
  Ordering,
  SignatureScheme,
  type Attempt,
  type Delivery,
  type DeliveryCount,
  type Event,
  type Webhook,
} from "@httpqueue/proto";
import type { AttemptRow } from "../db/attempts.js";
import type { DeliveryRow } from "../db/deliveries.js";
import type { EventRow } from "../db/events.js";
import type { DeliveryStatusValue, DisabledReasonValue, OrderingValue, SignatureSchemeValue } from "../db/schema.js";
import type { WebhookRow } from "../db/webhooks.js";

/** Database rows to API messages. The signing secret never leaves through here. */

export function toWebhook(row: WebhookRow): Webhook {
  return {
    id: row.id,
    namespace: row.namespace,
    event: row.event,
    url: row.url,
    method: row.method,
    headers: row.headers,
    timeout: row.timeout,
    active: row.active,
    description: row.description,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    retryPolicy:
      row.retrySchedule === null && row.maxAttempts === null
        ? undefined
        : { scheduleSeconds: row.retrySchedule ?? [], maxAttempts: row.maxAttempts ?? 0 },
    rateLimitPerSecond: row.rateLimitPerSecond,
    maxInFlight: row.maxInFlight,
    ordering: ORDERING[row.ordering],
    disabledReason:
      row.disabledReason === null ? DisabledReason.DISABLED_REASON_UNSPECIFIED : DISABLED_REASON[row.disabledReason],
    disabledAt: row.disabledAt ?? undefined,
    failingSince: row.failingSince ?? undefined,
    pacePerSecond: row.pace ?? 0,
    pausedUntil: row.pausedUntil !== null && row.pausedUntil.getTime() > Date.now() ? row.pausedUntil : undefined,
    filter: row.filter === null ? "" : JSON.stringify(row.filter),
    signatureScheme: SIGNATURE_SCHEME[row.signatureScheme],
    previousSecretExpiresAt: overlapEnd(row),
  };
}

/** When the previous secret stops signing; undefined when none signs any more. */
export function overlapEnd(row: Pick<WebhookRow, "previousSigningSecret" | "previousSecretExpiresAt">) {
  const end = row.previousSecretExpiresAt;
  return row.previousSigningSecret !== null && end !== null && end.getTime() > Date.now() ? end : undefined;
}

/** Stored signature scheme → API enum (api/signing-secrets.ts reads it the other way). */
export const SIGNATURE_SCHEME: Record<SignatureSchemeValue, SignatureScheme> = {
  "hmac-sha256": SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256,
  ed25519: SignatureScheme.SIGNATURE_SCHEME_ED25519,
};

/** Stored ordering → API enum (api/validation.ts reads it the other way). */
export const ORDERING: Record<OrderingValue, Ordering> = {
  none: Ordering.ORDERING_NONE,
  by_key: Ordering.ORDERING_BY_KEY,
};

const DISABLED_REASON: Record<DisabledReasonValue, DisabledReason> = {
  manual: DisabledReason.DISABLED_REASON_MANUAL,
  gone: DisabledReason.DISABLED_REASON_GONE,
  failing: DisabledReason.DISABLED_REASON_FAILING,
};

export function toEvent(row: EventRow): Event {
  return {
    id: row.id,
    namespace: row.namespace,
    event: row.event,
    payload: row.payload,
    ttlSeconds: row.ttlSeconds,
    metadata: row.metadata,
    idempotencyKey: row.idempotencyKey ?? "",
    orderingKey: row.orderingKey,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    payloadRemovedAt: row.payloadRemovedAt ?? undefined,
  };
}

const STATUS: Record<DeliveryStatusValue, DeliveryStatus> = {
  pending: DeliveryStatus.DELIVERY_STATUS_PENDING,
  retrying: DeliveryStatus.DELIVERY_STATUS_RETRYING,
  succeeded: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
  failed: DeliveryStatus.DELIVERY_STATUS_FAILED,
  expired: DeliveryStatus.DELIVERY_STATUS_EXPIRED,
  cancelled: DeliveryStatus.DELIVERY_STATUS_CANCELLED,
};

export const toDeliveryStatus = (status: DeliveryStatusValue): DeliveryStatus => STATUS[status];

export function toDelivery(row: DeliveryRow): Delivery {
  return {
    id: row.id,
    webhookId: row.webhookId,
    eventId: row.eventId,
    status: STATUS[row.status],
    attemptCount: row.attemptCount,
    maxAttempts: row.maxAttempts,
    responseCode: row.responseCode ?? 0,
    responseBody: row.responseBody ?? "",
    errorMessage: row.errorMessage ?? "",
    createdAt: row.createdAt,
    lastAttemptAt: row.lastAttemptAt ?? undefined,
    nextAttemptAt: row.nextAttemptAt ?? undefined,
    completedAt: row.completedAt ?? undefined,
  };
}

/** Counts per status, in the enum's order. */
export function toDeliveryCounts(counts: { status: DeliveryStatusValue; count: number }[]): DeliveryCount[] {
  return counts.map((c) => ({ status: STATUS[c.status], count: c.count })).sort((a, b) => a.status - b.status);
}

export function toAttempt(row: AttemptRow): Attempt {
  return {
    deliveryId: row.deliveryId,
    attempt: row.attemptNumber,
    startedAt: row.startedAt,
    durationMs: row.durationMs,
    requestMethod: row.requestMethod ?? "",
    requestUrl: row.requestUrl ?? "",
    requestHeaders: row.requestHeaders ?? {},
    responseCode: row.responseCode ?? 0,
    responseHeaders: row.responseHeaders ?? {},
    responseBody: row.responseBody ?? "",
    errorMessage: row.errorMessage ?? "",
  };
}
