import type { Config } from "../config.js";
import type { Db } from "../db/client.js";

/** What the RPC handlers need. */
export interface ApiDeps {
  db: Db;
  config: Pick<Config, "maxPayloadBytes" | "defaultTtlSeconds" | "maxTtlSeconds">;
}
