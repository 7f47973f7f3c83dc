import type { Server, ServerWritableStream, UntypedHandleCall } from "@grpc/grpc-js";
import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import { guardedImplementation, guardedService } from "../api/request-guard.js";
import type { HealthMonitor, Readiness } from "./health.js";

/** "" is the server as a whole; the API has the same status, since it needs everything the checks cover. */
export const HEALTH_SERVICE_NAMES = ["", "httpqueue.v1.WebhookService"] as const;

export interface GrpcHealth {
  /** Ends the open Watch calls, which would otherwise hold a graceful shutdown until its timeout. */
  endWatches(): void;
}

/**
 * Serves grpc.health.v1.Health (grpc-health-check) with the monitor's
 * readiness: SERVING when ready, NOT_SERVING otherwise, Watch streams told of
 * every change. It is a service of its own, outside the API, so that the
 * probes of load balancers and orchestrators need no API token.
 */
export function addHealthService(server: Server, monitor: HealthMonitor): GrpcHealth {
  const statusOf = (readiness: Readiness): ServingStatus => (readiness.ready ? "SERVING" : "NOT_SERVING");
  let current = statusOf(monitor.readiness());
  const health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICE_NAMES.map((name) => [name, current])));
  monitor.onChange((readiness) => {
    const next = statusOf(readiness);
    if (next === current) return;
    current = next;
    for (const name of HEALTH_SERVICE_NAMES) health.setStatus(name, next);
  });

  const watches = new Set<ServerWritableStream<unknown, unknown>>();
  health.addToServer({
    addService(service, implementation) {
      const watch = implementation.watch as (call: ServerWritableStream<unknown, unknown>) => void;
      const tracked = (call: ServerWritableStream<unknown, unknown>) => {
        watches.add(call);
        call.on("cancelled", () => watches.delete(call));
        watch(call);
      };
      // Requests that cannot be decoded answer INVALID_ARGUMENT, as the API's do.
      server.addService(
        guardedService(service),
        guardedImplementation(service, { ...implementation, watch: tracked as UntypedHandleCall }),
      );
    },
  });

  return {
    endWatches() {
      // A Watch that ends with OK tells the client to call again (with backoff),
      // by which time this server has stopped listening.
      for (const call of watches) if (!call.cancelled) call.end();
      watches.clear();
    },
  };
}
