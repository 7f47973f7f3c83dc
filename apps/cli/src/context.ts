import { createClient, type HttpQueueClient } from "@httpqueue/sdk";
import { UsageError } from "./errors.js";
import { tlsSettings, type GlobalOptions } from "./globals.js";
import { colorsFor, type Colors } from "./output/style.js";
import type { Input } from "./payload.js";

export interface Output {
  write(text: string): unknown;
  isTTY?: boolean | undefined;
}

/** The process's streams and environment, passed in so that nothing reads globals. */
export interface Io {
  stdout: Output;
  stderr: Output;
  stdin: Input;
  env: NodeJS.ProcessEnv;
}

/** What a command's handler works with. */
export interface Context {
  readonly io: Io;
  readonly globals: GlobalOptions;
  /** Created on first use, closed when the command ends. */
  readonly client: HttpQueueClient;
  /** Colours for stdout: none with --json, off a terminal, or with NO_COLOR. */
  readonly c: Colors;
  /** Prints `human()` or, with --json, `json()` as JSON; only the chosen one is computed. */
  print(human: () => string, json: () => unknown): void;
  /** A message for people, on stderr (kept out of --json output). */
  note(text: string): void;
  close(): void;
}

export function createContext(io: Io, globals: GlobalOptions, version: string): Context {
  let client: HttpQueueClient | undefined;
  const c = colorsFor(globals.json ? {} : io.stdout, io.env);
  return {
    io,
    globals,
    c,
    get client() {
      if (!client) {
        const tls = tlsSettings(globals);
        try {
          client = createClient({
            address: globals.addr,
            token: globals.token,
            tls,
            deadlineMs: globals.timeout,
            userAgent: `webhookctl/${version}`,
          });
        } catch (err) {
          throw new UsageError(err instanceof Error ? err.message : String(err), { cause: err });
        }
      }
      return client;
    },
    print(human, json) {
      io.stdout.write(globals.json ? `${JSON.stringify(json(), null, 2)}\n` : human());
    },
    note(text) {
      io.stderr.write(`${text}\n`);
    },
    close() {
      client?.close();
    },
  };
}
