export { createClient, type CallOptions, type ClientOptions, type HttpQueueClient, type TlsOptions } from "./client.js";
export { Code, HttpQueueError } from "./errors.js";
export type { DeliveryWatch } from "./watch.js";
export type { GetWebhookStatusInput, PushEventInput } from "./inputs.js";
export {
  signWebhook,
  verifyWebhook,
  verifyWebhookSignature,
  WebhookVerificationError,
  type RawBody,
  type VerifiedWebhook,
  type VerifyOptions,
  type WebhookHeaders,
  type WebhookVerificationFailure,
} from "./verify.js";
export * from "@httpqueue/proto";
