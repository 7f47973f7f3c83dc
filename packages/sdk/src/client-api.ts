import type {
  Attempt,
  DeepPartial,
  Delivery,
  Event,
  GetEventRequest,
  GetEventResponse,
  GetSigningSecretRequest,
  GetSigningSecretResponse,
  GetWebhookStatusResponse,
  ListAttemptsRequest,
  ListAttemptsResponse,
  ListEventsRequest,
  ListEventsResponse,
  ListWebhooksRequest,
  ListWebhooksResponse,
  PushEventResponse,
  RecoverWebhookRequest,
  RecoverWebhookResponse,
  RegisterWebhookRequest,
  RegisterWebhookResponse,
  ReplayMissedRequest,
  ReplayMissedResponse,
  ResendDeliveryRequest,
  ResendDeliveryResponse,
  RotateSecretRequest,
  RotateSecretResponse,
  UnregisterWebhookRequest,
  UnregisterWebhookResponse,
  UpdateWebhookRequest,
  UpdateWebhookResponse,
  WatchDeliveriesRequest,
  Webhook,
} from "@httpqueue/proto";
import type { GetWebhookStatusInput, PushEventInput } from "./inputs.js";
import type { DeliveryWatch } from "./watch.js";

/** What the client offers: a method per RPC, and iterators over paged lists. */

export interface CallOptions {
  /** Deadline of this call, in ms. A stream (watchDeliveries) has none unless it is set here. */
  deadlineMs?: number | undefined;
  /** Cancels the call (it rejects with CANCELLED). */
  signal?: AbortSignal | undefined;
}

export type Rpc<Req, Res> = (request: DeepPartial<Req>, options?: CallOptions) => Promise<Res>;

export interface HttpQueueClient {
  /**
   * Registers a webhook; the response carries what its receiver verifies
   * deliveries with: the signing secret (whsec_…), or for
   * `SignatureScheme.SIGNATURE_SCHEME_ED25519` the public key (whpk_…).
   */
  registerWebhook: Rpc<RegisterWebhookRequest, RegisterWebhookResponse>;
  /**
   * Changes the fields that are set; deactivating cancels pending deliveries.
   * A new `signatureScheme` rotates in a key of that scheme (the response's
   * `signingSecret`), the old one signing too for 24 hours.
   */
  updateWebhook: Rpc<UpdateWebhookRequest, UpdateWebhookResponse>;
  /**
   * Gives a webhook a new signing secret (or ed25519 key), returned once as
   * `signingSecret` (a public key for ed25519). The old one keeps signing for
   * `overlapSeconds`: 24 hours when absent, 0 to stop it at once, at most 7
   * days. `secret`: bring your own (whsec_… or whsk_…, of the webhook's scheme).
   */
  rotateSecret: Rpc<RotateSecretRequest, RotateSecretResponse>;
  /**
   * What a receiver verifies a webhook's deliveries with: its signing secret
   * or public key, and during a rotation's overlap the previous one and when
   * it stops. Pass both to `verifyWebhook`.
   */
  getSigningSecret: Rpc<GetSigningSecretRequest, GetSigningSecretResponse>;
  /** Removes a webhook and cancels its pending deliveries. */
  unregisterWebhook: Rpc<UnregisterWebhookRequest, UnregisterWebhookResponse>;
  /** One page of webhooks, oldest first. */
  listWebhooks: Rpc<ListWebhooksRequest, ListWebhooksResponse>;
  /** Every webhook, fetching page after page: `for await (const w of client.listWebhooksAsync({}))`. */
  listWebhooksAsync(
    request?: DeepPartial<Omit<ListWebhooksRequest, "pageToken">>,
    options?: CallOptions,
  ): AsyncIterable<Webhook>;
  /**
   * Pushes an event; durable once this resolves. A payload that is not a
   * string is JSON-encoded.
   */
  pushEvent(request: PushEventInput, options?: CallOptions): Promise<PushEventResponse>;
  /**
   * Deliveries of a webhook (`{ webhookId }`: counts per status and one page,
   * newest first) or of an event (`{ eventId }`: the event and one page of its
   * deliveries, oldest first). The generated form,
   * `{ identifier: { $case: "webhookId", value } }`, works too.
   */
  getWebhookStatus(request: GetWebhookStatusInput, options?: CallOptions): Promise<GetWebhookStatusResponse>;
  /**
   * Every delivery of a webhook (newest first) or of an event (oldest first),
   * fetching page after page.
   */
  listDeliveriesAsync(
    request: ({ webhookId: string } | { eventId: string }) & { pageSize?: number | undefined },
    options?: CallOptions,
  ): AsyncIterable<Delivery>;
  /** One page of a delivery's attempts, newest first: each request as sent and what came back. */
  listAttempts: Rpc<ListAttemptsRequest, ListAttemptsResponse>;
  /** Every attempt of a delivery, newest first, fetching page after page. */
  listAttemptsAsync(
    request: DeepPartial<Omit<ListAttemptsRequest, "pageToken">>,
    options?: CallOptions,
  ): AsyncIterable<Attempt>;
  /** An event with its payload, and how many of its deliveries are in each status. */
  getEvent: Rpc<GetEventRequest, GetEventResponse>;
  /** One page of events, newest first, without their payloads; filtered by namespace, event and time. */
  listEvents: Rpc<ListEventsRequest, ListEventsResponse>;
  /** Every event that matches, newest first, fetching page after page. */
  listEventsAsync(
    request?: DeepPartial<Omit<ListEventsRequest, "pageToken">>,
    options?: CallOptions,
  ): AsyncIterable<Event>;
  /** A new attempt of a delivery now, whatever its state; one that ended starts over with a full set of attempts. */
  resendDelivery: Rpc<ResendDeliveryRequest, ResendDeliveryResponse>;
  /** Resends every FAILED or EXPIRED delivery of a webhook created since `since`. */
  recoverWebhook: Rpc<RecoverWebhookRequest, RecoverWebhookResponse>;
  /** Queues deliveries to a webhook for the events since `since` that it has none of (it was inactive, or registered later). */
  replayMissed: Rpc<ReplayMissedRequest, ReplayMissedResponse>;
  /**
   * Deliveries' changes as they are committed: each attempt's outcome and each
   * change of state, filtered by namespace, webhook or event (all when none
   * is set). `for await (const change of watch)`; `break` (or `close()`, or
   * the signal) cancels the stream. A server error, e.g. RESOURCE_EXHAUSTED
   * for a watcher that fell behind, is thrown by the iteration. No deadline
   * unless `options.deadlineMs` sets one.
   */
  watchDeliveries(request?: DeepPartial<WatchDeliveriesRequest>, options?: CallOptions): DeliveryWatch;
  /** Closes the channel; later calls reject with FAILED_PRECONDITION. */
  close(): void;
}
