import { status } from "@grpc/grpc-js";
import type { DeepPartial, GetWebhookStatusRequest, PushEventRequest } from "@httpqueue/proto";
import { HttpQueueError } from "./errors.js";

/**
 * Request shapes the client accepts besides the generated ones: a payload of
 * any JSON-encodable value, and a status query without the oneof union.
 */

/** A `PushEventRequest` whose payload may be any JSON-encodable value. */
export type PushEventInput = Omit<DeepPartial<PushEventRequest>, "payload"> & {
  /**
   * The event's JSON document. A string (or bytes) is sent as is and must be
   * JSON text; any other value is JSON-encoded first.
   */
  payload?: unknown;
};

interface StatusPage {
  /** Deliveries per page, 1 to 1000; when absent, 20 by webhook and 100 by event. */
  pageSize?: number | undefined;
  /** `nextPageToken` of the previous page. */
  pageToken?: string | undefined;
}

/**
 * What `getWebhookStatus` takes: `{ webhookId }` or `{ eventId }` (with
 * paging), or the generated request with its `identifier` union.
 */
export type GetWebhookStatusInput =
  | DeepPartial<GetWebhookStatusRequest>
  | (StatusPage & { webhookId: string; eventId?: never; identifier?: never })
  | (StatusPage & { eventId: string; webhookId?: never; identifier?: never });

export function toPushEventRequest(input: PushEventInput): DeepPartial<PushEventRequest> {
  const { payload, ...rest } = input;
  return { ...rest, payload: encodePayload(payload) };
}

// Undefined for functions and symbols, whatever the declared type says.
const stringify = JSON.stringify as (value: unknown) => string | undefined;

function encodePayload(payload: unknown): string {
  if (payload === undefined || payload === null) return payload === null ? "null" : "";
  if (typeof payload === "string") return payload;
  if (payload instanceof Uint8Array) return Buffer.from(payload).toString("utf8");
  let json: string | undefined;
  try {
    json = stringify(payload);
  } catch (err) {
    throw new HttpQueueError(
      status.INVALID_ARGUMENT,
      `payload: cannot be encoded as JSON (${err instanceof Error ? err.message : String(err)})`,
      { cause: err },
    );
  }
  if (json === undefined) {
    throw new HttpQueueError(status.INVALID_ARGUMENT, `payload: a ${typeof payload} cannot be encoded as JSON`);
  }
  return json;
}

export function toGetWebhookStatusRequest(input: GetWebhookStatusInput): DeepPartial<GetWebhookStatusRequest> {
  if ("webhookId" in input && typeof input.webhookId === "string") {
    const { webhookId, ...page } = input;
    return { ...page, identifier: { $case: "webhookId", value: webhookId } };
  }
  if ("eventId" in input && typeof input.eventId === "string") {
    const { eventId, ...page } = input;
    return { ...page, identifier: { $case: "eventId", value: eventId } };
  }
  return input;
}
