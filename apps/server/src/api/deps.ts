import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import type { Metrics } from "../observability/metrics.js";
import type { SecretCipher } from "../secrets/cipher.js";
import type { WatchHub } from "./watch.js";

/** What the RPC handlers need. */
export interface ApiDeps {
  db: Db;
  config: Pick<
    Config,
    "maxPayloadBytes" | "defaultTtlSeconds" | "maxTtlSeconds" | "destinations" | "maxAttempts" | "watchBuffer"
  >;
  metrics: Pick<Metrics, "eventPushed" | "webhookRegistered" | "deliveryOutcome" | "watcherEnded">;
  /** Where WatchDeliveries streams get their changes. */
  watch: WatchHub;
  /** Signing secrets go through it to and from the database. */
  secrets: SecretCipher;
}
