import { readFile } from "node:fs/promises";
import { UsageError } from "./errors.js";

export interface Input {
  isTTY?: boolean | undefined;
  [Symbol.asyncIterator](): AsyncIterator<unknown>;
}

/**
 * The event payload: the argument itself, `@file`, or stdin (`-`, or no
 * argument while stdin is not a terminal). It must be JSON; it is sent byte
 * for byte.
 */
export async function readPayload(arg: string | undefined, stdin: Input): Promise<string> {
  let text: string;
  let source: string;
  if (arg === "-" || (arg === undefined && stdin.isTTY !== true)) {
    source = "stdin";
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
    text = Buffer.concat(chunks).toString("utf8");
  } else if (arg === undefined) {
    throw new UsageError("a payload is required: give the JSON as an argument, as @file, or on stdin with -");
  } else if (arg.startsWith("@")) {
    const path = arg.slice(1);
    source = `file ${path}`;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(`cannot read the payload file ${path}${code ? ` (${code})` : ""}`, { cause: err });
    }
  } else {
    source = "argument";
    text = arg;
  }
  if (text.trim() === "") throw new UsageError(`the payload (${source}) is empty: it must be a JSON document`);
  try {
    JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new UsageError(`the payload (${source}) is not valid JSON: ${reason}`, { cause: err });
  }
  return text;
}
