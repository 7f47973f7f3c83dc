import type { handleUnaryCall, ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import type { WebhookServiceServer } from "@httpqueue/proto";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { ApiDeps } from "./deps.js";
import { toServiceError } from "./errors.js";
import { pushEvent } from "./events.js";
import { getWebhookStatus } from "./status.js";
import { requestProblem } from "./request-guard.js";
import { listWebhooks, registerWebhook, unregisterWebhook, updateWebhook } from "./webhooks.js";

/**
 * The WebhookService implementation: each RPC is an async handler behind one
 * adapter, which logs one line per call and counts it in the RPC metrics.
 */
export function createWebhookService(
  deps: ApiDeps & { logger: Logger; metrics: Pick<Metrics, "rpcStarted" | "rpcHandled"> },
): WebhookServiceServer {
  const { metrics } = deps;
  const logger = deps.logger.child({ component: "api" });

  function unary<Req, Res>(
    method: string,
    handler: (deps: ApiDeps, req: Req) => Promise<Res>,
  ): handleUnaryCall<Req, Res> {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const started = performance.now();
      metrics.rpcStarted(method);
      const done = (code: status) => {
        const ms = performance.now() - started;
        const name = status[code] as string | undefined;
        logger.info({ rpc: method, code: name ?? code, durationMs: Math.round(ms * 10) / 10 }, "rpc");
        metrics.rpcHandled(method, name ?? "UNKNOWN", ms / 1000);
      };
      const problem = requestProblem(call.request as object);
      const handled = problem === undefined ? handler(deps, call.request) : Promise.reject(problem);
      handled.then(
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
