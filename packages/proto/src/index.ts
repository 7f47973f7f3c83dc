export * from "./gen/httpqueue/v1/webhook.js";
