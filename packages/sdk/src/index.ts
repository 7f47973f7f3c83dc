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
  type WebhookKey,
  type WebhookVerificationFailure,
} from "./verify.js";
// For receivers and their tests: a key pair to sign test deliveries with, and the public key of a whsk_ key.
// The rest of signing is in "@httpqueue/sdk/signing", and so is its string type SignatureScheme: here that
// name is the API's enum (from @httpqueue/proto).
export { generateSigningKey, verificationKeyOf } from "./signing.js";
export * from "@httpqueue/proto";
