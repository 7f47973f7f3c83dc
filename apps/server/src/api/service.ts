import type { handleUnaryCall, ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import type { WebhookServiceServer } from "@httpqueue/proto";
import type { Logger } from "../observability/logger.js";
import type { ApiDeps } from "./deps.js";
import { toServiceError } from "./errors.js";
import { pushEvent } from "./events.js";
import { getWebhookStatus } from "./status.js";
import { listWebhooks, registerWebhook, unregisterWebhook, updateWebhook } from "./webhooks.js";

/** The WebhookService implementation: each RPC is an async handler behind one adapter. */
export function createWebhookService(deps: ApiDeps & { logger: Logger }): WebhookServiceServer {
  const logger = deps.logger.child({ component: "api" });

  function unary<Req, Res>(
    method: string,
    handler: (deps: ApiDeps, req: Req) => Promise<Res>,
  ): handleUnaryCall<Req, Res> {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const started = performance.now();
      const done = (code: status) => {
        logger.info(
          { rpc: method, code: status[code], durationMs: Math.round((performance.now() - started) * 10) / 10 },
          "rpc",
        );
      };
      handler(deps, call.request).then(
        (response) => {
          done(status.OK);
          callback(null, response);
        },
        (err: unknown) => {
          const { error, unexpected } = toServiceError(err);
          if (unexpected) logger.error({ rpc: method, err }, "rpc failed");
          done(error.code ?? status.UNKNOWN);
          callback(error, null);
        },
      );
    };
  }

  return {
    registerWebhook: unary("RegisterWebhook", registerWebhook),
    updateWebhook: unary("UpdateWebhook", updateWebhook),
    unregisterWebhook: unary("UnregisterWebhook", unregisterWebhook),
    listWebhooks: unary("ListWebhooks", listWebhooks),
    pushEvent: unary("PushEvent", pushEvent),
    getWebhookStatus: unary("GetWebhookStatus", getWebhookStatus),
  };
}
