import { within } from "./clock.js";

/**
 * What a scenario started (servers, databases, a PostgreSQL of its own,
 * receivers), released in reverse order when it ends however it ends, and
 * when the run is interrupted. Each release is bounded: a stuck one is
 * reported and the next one runs.
 */
export class Resources {
  private readonly steps: { what: string; release: () => Promise<void> | void }[] = [];

  add(what: string, release: () => Promise<void> | void): void {
    this.steps.push({ what, release });
  }

  /** Releases everything; returns what could not be released, and why. */
  async releaseAll(timeoutMs = 30_000): Promise<string[]> {
    const failures: string[] = [];
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await within(`releasing ${step.what}`, timeoutMs, Promise.resolve().then(step.release));
      } catch (err) {
        failures.push(`${step.what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return failures;
  }
}
