import { readFile } from "node:fs/promises";
import { UsageError } from "./errors.js";

export interface Input {
  isTTY?: boolean | undefined;
  [Symbol.asyncIterator](): AsyncIterator<unknown>;
}

/**
 * An argument's text: as given, read from a file (`@file`), or from stdin
 * (`-`); `what` names it in the error when the file cannot be read.
 */
export async function readArgument(arg: string, stdin: Input, what: string): Promise<{ text: string; source: string }> {
  if (arg === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
    return { text: Buffer.concat(chunks).toString("utf8"), source: "stdin" };
  }
  if (!arg.startsWith("@")) return { text: arg, source: "argument" };
  const path = arg.slice(1);
  try {
    return { text: await readFile(path, "utf8"), source: `file ${path}` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read the ${what} file ${path}${code ? ` (${code})` : ""}`, { cause: err });
  }
}

/**
 * The event payload: the argument itself, `@file`, or stdin (`-`, or no
 * argument while stdin is not a terminal). It must be JSON; it is sent byte
 * for byte.
 */
export async function readPayload(arg: string | undefined, stdin: Input): Promise<string> {
  if (arg === undefined && stdin.isTTY === true) {
    throw new UsageError("a payload is required: give the JSON as an argument, as @file, or on stdin with -");
  }
  const { text, source } = await readArgument(arg ?? "-", stdin, "payload");
  if (text.trim() === "") throw new UsageError(`the payload (${source}) is empty: it must be a JSON document`);
  try {
    JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new UsageError(`the payload (${source}) is not valid JSON: ${reason}`, { cause: err });
  }
  return text;
}
