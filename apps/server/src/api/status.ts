import type { GetWebhookStatusRequest, GetWebhookStatusResponse } from "@httpqueue/proto";
import { countDeliveriesByStatus, listEventDeliveries, listWebhookDeliveries } from "../db/deliveries.js";
import { findEvent } from "../db/events.js";
import { findWebhook } from "../db/webhooks.js";
import { toDelivery, toDeliveryCounts, toEvent, toWebhook } from "./convert.js";
import type { ApiDeps } from "./deps.js";
import { invalidArgument, notFound } from "./errors.js";
import { checkPageSize, decodePageToken, toPage } from "./pagination.js";
import { checkId } from "./validation.js";

const PAGE_DEFAULT = 20;
/** By event, a page holds what one event fans out to in most setups; each delivery carries up to 16 KiB of response. */
const EVENT_PAGE_DEFAULT = 100;
const PAGE_MAX = 1000;

export async function getWebhookStatus(deps: ApiDeps, req: GetWebhookStatusRequest): Promise<GetWebhookStatusResponse> {
  const identifier = req.identifier;
  if (!identifier) throw invalidArgument("identifier", "set webhook_id or event_id");
  if (identifier.$case === "eventId") {
    const id = checkId("event_id", identifier.value);
    const limit = checkPageSize("page_size", req.pageSize, EVENT_PAGE_DEFAULT, PAGE_MAX);
    const afterId = decodePageToken("page_token", req.pageToken);
    const [event, rows] = await Promise.all([
      findEvent(deps.db, id),
      listEventDeliveries(deps.db, id, { afterId, limit: limit + 1 }),
    ]);
    if (!event) throw notFound(`event ${id} not found`);
    const { page, nextPageToken } = toPage(rows, limit);
    return { event: toEvent(event), counts: [], deliveries: page.map(toDelivery), nextPageToken };
  }

  const id = checkId("webhook_id", identifier.value);
  const limit = checkPageSize("page_size", req.pageSize, PAGE_DEFAULT, PAGE_MAX);
  const beforeId = decodePageToken("page_token", req.pageToken);
  const [webhook, counts, rows] = await Promise.all([
    findWebhook(deps.db, id),
    countDeliveriesByStatus(deps.db, { webhookId: id }),
    listWebhookDeliveries(deps.db, id, { beforeId, limit: limit + 1 }),
  ]);
  if (!webhook) throw notFound(`webhook ${id} not found`);
  const { page, nextPageToken } = toPage(rows, limit);
  return {
    webhook: toWebhook(webhook),
    counts: toDeliveryCounts(counts),
    deliveries: page.map(toDelivery),
    nextPageToken,
  };
}
