import type {
  handleServerStreamingCall,
  handleUnaryCall,
  ServerUnaryCall,
  ServerWritableStream,
  sendUnaryData,
} from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import type { WebhookServiceServer } from "@httpqueue/proto";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { ApiDeps } from "./deps.js";
import { toServiceError } from "./errors.js";
import { pushEvent } from "./events.js";
import { getEvent, listDeliveryAttempts, listEventRecords, recover, replay, resend } from "./history.js";
import { getWebhookStatus } from "./status.js";
import { watchDeliveries } from "./watch.js";
import { requestProblem } from "./request-guard.js";
import { getSigningSecret, rotateSecret } from "./signing-secrets.js";
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

  /** Logs the call's end and counts it; returns what to call with its status code. */
  function started(method: string): (code: status) => void {
    const at = performance.now();
    metrics.rpcStarted(method);
    return (code: status) => {
      const ms = performance.now() - at;
      const name = status[code] as string | undefined;
      logger.info({ rpc: method, code: name ?? code, durationMs: Math.round(ms * 10) / 10 }, "rpc");
      metrics.rpcHandled(method, name ?? "UNKNOWN", ms / 1000);
    };
  }

  /**
   * The status of an error a handler threw, logged when unexpected: at warn
   * when the caller is told to retry (the database unavailable, a lost race),
   * which an outage makes of every call while readiness reports it; at error
   * otherwise (INTERNAL and the like).
   */
  function failure(method: string, err: unknown) {
    const { error, unexpected } = toServiceError(err);
    if (unexpected) {
      const retryable = error.code === status.UNAVAILABLE || error.code === status.ABORTED;
      logger[retryable ? "warn" : "error"]({ rpc: method, err }, "rpc failed");
    }
    return error;
  }

  function unary<Req, Res>(
    method: string,
    handler: (deps: ApiDeps, req: Req) => Promise<Res>,
  ): handleUnaryCall<Req, Res> {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const done = started(method);
      const problem = requestProblem(call.request as object);
      const handled = problem === undefined ? handler(deps, call.request) : Promise.reject(problem);
      handled.then(
        (response) => {
          done(status.OK);
          callback(null, response);
        },
        (err: unknown) => {
          const error = failure(method, err);
          done(error.code ?? status.UNKNOWN);
          callback(error, null);
        },
      );
    };
  }

  /** A streaming handler resolves with the code its stream ended with (it ends the stream itself). */
  function serverStream<Req, Res>(
    method: string,
    handler: (deps: ApiDeps, call: ServerWritableStream<Req, Res>) => Promise<status>,
  ): handleServerStreamingCall<Req, Res> {
    return (call: ServerWritableStream<Req, Res>) => {
      const done = started(method);
      const problem = requestProblem(call.request as object);
      const handled = problem === undefined ? handler(deps, call) : Promise.reject(problem);
      handled.then(done, (err: unknown) => {
        const error = failure(method, err);
        done(error.code ?? status.UNKNOWN);
        call.emit("error", error);
      });
    };
  }

  return {
    registerWebhook: unary("RegisterWebhook", registerWebhook),
    updateWebhook: unary("UpdateWebhook", updateWebhook),
    unregisterWebhook: unary("UnregisterWebhook", unregisterWebhook),
    rotateSecret: unary("RotateSecret", rotateSecret),
    getSigningSecret: unary("GetSigningSecret", getSigningSecret),
    listWebhooks: unary("ListWebhooks", listWebhooks),
    pushEvent: unary("PushEvent", pushEvent),
    getWebhookStatus: unary("GetWebhookStatus", getWebhookStatus),
    listAttempts: unary("ListAttempts", listDeliveryAttempts),
    getEvent: unary("GetEvent", getEvent),
    listEvents: unary("ListEvents", listEventRecords),
    resendDelivery: unary("ResendDelivery", resend),
    recoverWebhook: unary("RecoverWebhook", recover),
    replayMissed: unary("ReplayMissed", replay),
    watchDeliveries: serverStream("WatchDeliveries", watchDeliveries),
  };
}
