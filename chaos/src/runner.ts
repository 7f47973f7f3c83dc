import { within } from "./clock.js";
import type { Scenario, ScenarioContext } from "./context.js";
import { DEFAULT_ADMIN_URL } from "./databases.js";
import type { ScenarioResult } from "./report.js";
import { Resources } from "./resources.js";

export interface RunOptions {
  smoke: boolean;
  seed: number;
  size?: number | undefined;
  adminUrl?: string;
  say?: (line: string) => void;
}

/** What is running now, for an interrupted run to release. */
let current: Resources | undefined;

export function releaseCurrent(): Promise<string[]> {
  return current ? current.releaseAll(10_000) : Promise.resolve([]);
}

/**
 * Runs one scenario within its budget and releases everything it started,
 * whatever happened. A scenario that throws or overruns is a broken promise
 * with its reason, never a hang.
 */
export async function runScenario(scenario: Scenario, options: RunOptions): Promise<ScenarioResult> {
  const budget = options.smoke ? scenario.budgetMs.smoke : scenario.budgetMs.full;
  const resources = new Resources();
  current = resources;
  const started = Date.now();
  const say = options.say ?? (() => undefined);
  const ctx: ScenarioContext = {
    adminUrl: options.adminUrl ?? DEFAULT_ADMIN_URL,
    seed: options.seed,
    smoke: options.smoke,
    size: options.size,
    deadlineAt: started + budget,
    resources,
    say: (line) => {
      say(`[${scenario.name} ${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`);
    },
  };
  let figures: [string, string][] = [];
  const broken: string[] = [];
  try {
    // The scenario's own deadlines come first; this one catches a step that has none.
    const outcome = await within(`the ${scenario.name} scenario`, budget + 30_000, scenario.run(ctx));
    figures = outcome.figures;
    broken.push(...outcome.broken);
  } catch (err) {
    broken.push(`the scenario failed: ${err instanceof Error ? err.message : String(err)}`);
    if (err instanceof Error && err.cause instanceof Error) broken.push(`  cause: ${err.cause.message}`);
  } finally {
    for (const failure of await resources.releaseAll()) broken.push(`cleanup failed: ${failure}`);
    current = undefined;
  }
  return {
    name: scenario.name,
    title: scenario.title,
    figures,
    broken,
    seconds: (Date.now() - started) / 1000,
  };
}
