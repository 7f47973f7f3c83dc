export { createClient, type CallOptions, type ClientOptions, type HttpQueueClient, type TlsOptions } from "./client.js";
export { Code, HttpQueueError } from "./errors.js";
export * from "@httpqueue/proto";
