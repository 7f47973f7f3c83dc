import { status } from "@grpc/grpc-js";
import type {
  GetEventRequest,
  GetEventResponse,
  ListAttemptsRequest,
  ListAttemptsResponse,
  ListEventsRequest,
  ListEventsResponse,
  RecoverWebhookRequest,
  RecoverWebhookResponse,
  ReplayMissedRequest,
  ReplayMissedResponse,
  ResendDeliveryRequest,
  ResendDeliveryResponse,
} from "@httpqueue/proto";
import { listAttempts } from "../db/attempts.js";
import { countDeliveriesByStatus, webhookOfDelivery } from "../db/deliveries.js";
import { findEvent, listEvents } from "../db/events.js";
import { recoverWebhook, replayMissed, resendDelivery, type Unavailable } from "../db/resends.js";
import { toAttempt, toDelivery, toDeliveryCounts, toEvent } from "./convert.js";
import type { ApiDeps } from "./deps.js";
import { ApiError, invalidArgument, notFound } from "./errors.js";
import { checkPageSize, decodePageToken, toPage } from "./pagination.js";
import { checkId, checkName, checkPastTime, checkTimeBound } from "./validation.js";

// The operator's view of what happened and what to do again: a delivery's
// attempts, events, and resending, recovering and replaying deliveries.

const ATTEMPTS_PAGE_DEFAULT = 20;
/** Each attempt carries up to RESPONSE_BODY_LIMIT_BYTES of response and its headers. */
const ATTEMPTS_PAGE_MAX = 100;
const EVENTS_PAGE_DEFAULT = 100;
const EVENTS_PAGE_MAX = 1000;
/** Attempts pages continue after an attempt number. */
const ATTEMPT_NUMBER = /^\d{1,5}$/;

export async function listDeliveryAttempts(deps: ApiDeps, req: ListAttemptsRequest): Promise<ListAttemptsResponse> {
  const id = checkId("delivery_id", req.deliveryId);
  const limit = checkPageSize("page_size", req.pageSize, ATTEMPTS_PAGE_DEFAULT, ATTEMPTS_PAGE_MAX);
  const token = decodePageToken("page_token", req.pageToken, ATTEMPT_NUMBER);
  const before = token === undefined ? undefined : Number(token);
  const rows = await listAttempts(deps.db, id, { before, limit: limit + 1 });
  if (rows.length === 0 && before === undefined && (await webhookOfDelivery(deps.db, id)) === undefined) {
    throw notFound(`delivery ${id} not found`);
  }
  const { page, nextPageToken } = toPage(rows, limit, (attempt) => String(attempt.attemptNumber));
  return { attempts: page.map(toAttempt), nextPageToken };
}

export async function getEvent(deps: ApiDeps, req: GetEventRequest): Promise<GetEventResponse> {
  const id = checkId("event_id", req.eventId);
  const [event, counts] = await Promise.all([
    findEvent(deps.db, id),
    countDeliveriesByStatus(deps.db, { eventId: id }),
  ]);
  if (!event) throw notFound(`event ${id} not found`);
  return { event: toEvent(event), counts: toDeliveryCounts(counts) };
}

export async function listEventRecords(deps: ApiDeps, req: ListEventsRequest): Promise<ListEventsResponse> {
  const namespace = req.namespace === "" ? undefined : checkName("namespace", req.namespace);
  const event = req.event === "" ? undefined : checkName("event", req.event);
  if (event !== undefined && namespace === undefined) throw invalidArgument("event", "needs a namespace too");
  const createdAfter = checkPastTime("created_after", req.createdAfter);
  // May be in the future: every event is before it.
  const createdBefore = checkTimeBound("created_before", req.createdBefore);
  const limit = checkPageSize("page_size", req.pageSize, EVENTS_PAGE_DEFAULT, EVENTS_PAGE_MAX);
  const beforeId = decodePageToken("page_token", req.pageToken);
  const rows = await listEvents(deps.db, { namespace, event, createdAfter, createdBefore, beforeId, limit: limit + 1 });
  const { page, nextPageToken } = toPage(rows, limit);
  return { events: page.map(toEvent), nextPageToken };
}

export async function resend(deps: ApiDeps, req: ResendDeliveryRequest): Promise<ResendDeliveryResponse> {
  const id = checkId("delivery_id", req.deliveryId);
  const result = await resendDelivery(deps.db, id, deps.config.maxAttempts);
  if ("problem" in result) {
    if (result.problem === "no delivery") throw notFound(`delivery ${id} not found`);
    if (result.problem === "payload removed") {
      throw new ApiError(
        status.FAILED_PRECONDITION,
        `event ${result.eventId} cannot be sent again: retention removed its payload at ${result.removedAt.toISOString()} (PAYLOAD_RETENTION)`,
      );
    }
    throw unavailable(result.problem, "the delivery's webhook");
  }
  return { delivery: toDelivery(result) };
}

export async function recover(deps: ApiDeps, req: RecoverWebhookRequest): Promise<RecoverWebhookResponse> {
  const id = checkId("webhook_id", req.webhookId);
  const since = checkPastTime("since", req.since, true);
  const resent = await recoverWebhook(deps.db, id, since, deps.config.maxAttempts);
  if (typeof resent !== "number") throw unavailable(resent, `webhook ${id}`);
  return { resent };
}

export async function replay(deps: ApiDeps, req: ReplayMissedRequest): Promise<ReplayMissedResponse> {
  const id = checkId("webhook_id", req.webhookId);
  const since = checkPastTime("since", req.since, true);
  const queued = await replayMissed(deps.db, id, since, deps.config.maxAttempts);
  if (typeof queued !== "number") throw unavailable(queued, `webhook ${id}`);
  return { queued };
}

function unavailable(problem: Unavailable, what: string): ApiError {
  if (problem === "not found") return notFound(`${what} not found (unregistered)`);
  return new ApiError(
    status.FAILED_PRECONDITION,
    `${what} is inactive, and would cancel what it is sent: activate it first (UpdateWebhook active=true)`,
  );
}
