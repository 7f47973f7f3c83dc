import type {
  ListWebhooksRequest,
  ListWebhooksResponse,
  RegisterWebhookRequest,
  RegisterWebhookResponse,
  UnregisterWebhookRequest,
  UnregisterWebhookResponse,
  UpdateWebhookRequest,
  UpdateWebhookResponse,
} from "@httpqueue/proto";
import * as webhooks from "../db/webhooks.js";
import { destinationWarning } from "../delivery/destinations.js";
import { overlapEnd, toWebhook } from "./convert.js";
import type { ApiDeps } from "./deps.js";
import { notFound } from "./errors.js";
import { checkSignatureScheme, DEFAULT_OVERLAP_SECONDS, newSigningKey } from "./signing-secrets.js";
import {
  DEFAULT_TIMEOUT_SECONDS,
  MAX_IN_FLIGHT,
  MAX_RATE_LIMIT,
  checkHeaders,
  checkEventPattern,
  checkFilter,
  checkId,
  checkLimit,
  checkMethod,
  checkName,
  checkOrdering,
  checkRetryPolicy,
  checkText,
  checkTimeout,
  checkUrl,
} from "./validation.js";

const NO_RATE_LIMIT = "no limit";
const DEFAULT_IN_FLIGHT = "the server's default, WEBHOOK_MAX_IN_FLIGHT";
import { checkPageSize, decodePageToken, toPage } from "./pagination.js";

export async function registerWebhook(deps: ApiDeps, req: RegisterWebhookRequest): Promise<RegisterWebhookResponse> {
  const signatureScheme = checkSignatureScheme("signature_scheme", req.signatureScheme) ?? "hmac-sha256";
  const key = newSigningKey(deps, signatureScheme);
  const row = await webhooks.insertWebhook(deps.db, {
    namespace: checkName("namespace", req.namespace),
    event: checkEventPattern("event", req.event),
    url: checkUrl("url", req.url),
    method: checkMethod("method", req.method),
    headers: checkHeaders("headers", req.headers),
    timeout: req.timeout === 0 ? DEFAULT_TIMEOUT_SECONDS : checkTimeout("timeout", req.timeout),
    active: req.active ?? true,
    description: checkText("description", req.description),
    ...checkRetryPolicy("retry_policy", req.retryPolicy),
    rateLimitPerSecond: checkLimit("rate_limit_per_second", req.rateLimitPerSecond, MAX_RATE_LIMIT, NO_RATE_LIMIT),
    maxInFlight: checkLimit("max_in_flight", req.maxInFlight, MAX_IN_FLIGHT, DEFAULT_IN_FLIGHT),
    ordering: checkOrdering("ordering", req.ordering),
    filter: checkFilter("filter", req.filter),
    signatureScheme,
    signingSecret: key.sealed,
  });
  deps.metrics.webhookRegistered();
  const warnings = await urlWarnings(deps, row.url);
  return { webhookId: row.id, webhook: toWebhook(row), signingSecret: key.shown, warnings };
}

export async function updateWebhook(deps: ApiDeps, req: UpdateWebhookRequest): Promise<UpdateWebhookResponse> {
  const id = checkId("webhook_id", req.webhookId);
  const changes: webhooks.WebhookChanges = {};
  if (req.url !== undefined) changes.url = checkUrl("url", req.url);
  if (req.method !== undefined) changes.method = checkMethod("method", req.method);
  if (req.headers !== undefined) changes.headers = checkHeaders("headers", req.headers.values);
  if (req.timeout !== undefined) changes.timeout = checkTimeout("timeout", req.timeout);
  if (req.active !== undefined) changes.active = req.active;
  if (req.description !== undefined) changes.description = checkText("description", req.description);
  if (req.retryPolicy !== undefined) Object.assign(changes, checkRetryPolicy("retry_policy", req.retryPolicy));
  if (req.rateLimitPerSecond !== undefined) {
    changes.rateLimitPerSecond = checkLimit(
      "rate_limit_per_second",
      req.rateLimitPerSecond,
      MAX_RATE_LIMIT,
      NO_RATE_LIMIT,
    );
  }
  if (req.maxInFlight !== undefined) {
    changes.maxInFlight = checkLimit("max_in_flight", req.maxInFlight, MAX_IN_FLIGHT, DEFAULT_IN_FLIGHT);
  }
  if (req.ordering !== undefined) changes.ordering = checkOrdering("ordering", req.ordering);
  if (req.filter !== undefined) changes.filter = checkFilter("filter", req.filter);
  const scheme = checkSignatureScheme("signature_scheme", req.signatureScheme);
  const key = scheme && newSigningKey(deps, scheme);
  if (scheme && key) changes.scheme = { scheme, sealed: key.sealed, overlapSeconds: DEFAULT_OVERLAP_SECONDS };
  if (Object.keys(changes).length === 0) {
    const row = await webhooks.findWebhook(deps.db, id);
    if (!row) throw notFound(`webhook ${id} not found`);
    return { webhook: toWebhook(row), warnings: [], signingSecret: "" };
  }
  const updated = await webhooks.updateWebhook(deps.db, id, changes, deps.config.maxAttempts);
  if (!updated) throw notFound(`webhook ${id} not found`);
  deps.metrics.deliveryOutcome("cancelled", updated.cancelled);
  const warnings = changes.url === undefined ? [] : await urlWarnings(deps, updated.webhook.url);
  // The webhook had that scheme already when its secret is not the new one.
  const rekeyed = key !== undefined && updated.webhook.signingSecret === key.sealed;
  return {
    webhook: toWebhook(updated.webhook),
    warnings,
    signingSecret: rekeyed ? key.shown : "",
    previousSecretExpiresAt: rekeyed ? overlapEnd(updated.webhook) : undefined,
  };
}

export async function unregisterWebhook(
  deps: ApiDeps,
  req: UnregisterWebhookRequest,
): Promise<UnregisterWebhookResponse> {
  const id = checkId("webhook_id", req.webhookId);
  const cancelled = await webhooks.unregisterWebhook(deps.db, id);
  if (cancelled === undefined) throw notFound(`webhook ${id} not found`);
  deps.metrics.deliveryOutcome("cancelled", cancelled);
  return { cancelledDeliveries: cancelled };
}

const LIST_DEFAULT = 100;
const LIST_MAX = 1000;

export async function listWebhooks(deps: ApiDeps, req: ListWebhooksRequest): Promise<ListWebhooksResponse> {
  const namespace = req.namespace === "" ? undefined : checkName("namespace", req.namespace);
  const limit = checkPageSize("page_size", req.pageSize, LIST_DEFAULT, LIST_MAX);
  const afterId = decodePageToken("page_token", req.pageToken);
  const rows = await webhooks.listWebhooks(deps.db, { namespace, afterId, limit: limit + 1 });
  const { page, nextPageToken } = toPage(rows, limit);
  return { webhooks: page.map(toWebhook), nextPageToken };
}

/** The URL is stored either way: the settings may change before the first delivery. */
async function urlWarnings(deps: ApiDeps, url: string): Promise<string[]> {
  const reason = await destinationWarning(deps.config.destinations, url);
  return reason === undefined ? [] : [`deliveries to this URL would be refused now: ${reason}`];
}
