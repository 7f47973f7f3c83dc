import type { PushEventRequest, PushEventResponse } from "@httpqueue/proto";
import { insertEvent } from "../db/events.js";
import type { ApiDeps } from "./deps.js";
import {
  checkIdempotencyKey,
  checkMetadata,
  checkName,
  checkOrderingKey,
  checkPayload,
  checkPushNamespace,
  checkTtl,
} from "./validation.js";

export async function pushEvent(deps: ApiDeps, req: PushEventRequest): Promise<PushEventResponse> {
  const { config } = deps;
  const namespace = checkPushNamespace("namespace", req.namespace);
  const event = checkName("event", req.event);
  const { eventId, duplicate } = await insertEvent(deps.db, {
    namespace,
    event,
    payload: checkPayload("payload", req.payload, config.maxPayloadBytes),
    ttlSeconds: checkTtl("ttl_seconds", req.ttlSeconds, config.defaultTtlSeconds, config.maxTtlSeconds),
    metadata: checkMetadata("metadata", req.metadata),
    idempotencyKey: checkIdempotencyKey("idempotency_key", req.idempotencyKey),
    orderingKey: checkOrderingKey("ordering_key", req.orderingKey),
    maxAttempts: config.maxAttempts,
  });
  deps.metrics.eventPushed(namespace, event, duplicate);
  return { eventId, duplicate };
}
