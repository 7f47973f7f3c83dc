import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import type { Dispatcher } from "../delivery/dispatcher.js";
import type { Metrics } from "../observability/metrics.js";

/** What the RPC handlers need. */
export interface ApiDeps {
  db: Db;
  config: Pick<
    Config,
    "maxPayloadBytes" | "defaultTtlSeconds" | "maxTtlSeconds" | "destinations" | "maxAttempts" | "directDispatchGraceMs"
  >;
  /** Makes the first attempts of pushed events' deliveries; absent, the queue makes them. */
  dispatcher?: Dispatcher | undefined;
  metrics: Pick<Metrics, "eventPushed" | "webhookRegistered" | "deliveryOutcome">;
}
