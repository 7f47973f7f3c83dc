export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A scenario's step that ran past its deadline: the scenario ends with this, it never hangs. */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

/**
 * Polls `check` every `intervalMs` until it returns something other than
 * undefined; throws a DeadlineError naming `what` at `deadlineAt` (ms since
 * the epoch). Errors thrown by `check` count as "not yet"; the last one is
 * the cause.
 */
export async function waitFor<T>(
  what: string,
  deadlineAt: number,
  check: () => T | undefined | Promise<T | undefined>,
  intervalMs = 100,
): Promise<T> {
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadlineAt) {
      throw new DeadlineError(`gave up waiting for ${what}`, { cause: last });
    }
    await sleep(intervalMs);
  }
}

/** Rejects with a DeadlineError naming `what` if `promise` has not settled within `ms`. */
export async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new DeadlineError(`${what} took more than ${(ms / 1000).toFixed(0)} s`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
