import assert from "node:assert/strict";
import { HttpQueueError } from "@httpqueue/sdk";

/** The HttpQueueError a call rejects with (the test fails if it resolves or rejects otherwise). */
export async function rejection(promise: Promise<unknown>): Promise<HttpQueueError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof HttpQueueError, `expected an HttpQueueError, got ${String(err)}`);
  return err;
}
