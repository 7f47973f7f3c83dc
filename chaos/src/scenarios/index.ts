import type { Scenario } from "../context.js";
import { hostileScenario } from "./hostile.js";
import { killScenario } from "./kill.js";
import { postgresScenario } from "./postgres.js";
import { receiverScenario } from "./receiver.js";
import { twoServersScenario } from "./two-servers.js";

/** Every scenario, in the order `pnpm chaos` runs them. */
export const SCENARIOS: readonly Scenario[] = [
  killScenario,
  postgresScenario,
  receiverScenario,
  twoServersScenario,
  hostileScenario,
];
