import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { createClient, type HttpQueueClient, type TlsOptions } from "@httpqueue/sdk";
import { UsageError } from "./errors.js";
import { colorsFor, type Colors } from "./output/style.js";
import type { Input } from "./payload.js";

export const DEFAULT_ADDR = "127.0.0.1:50051";
export const DEFAULT_DEADLINE_MS = 10_000;

/** The options every command takes (declared on the program; commander accepts them after the command too). */
export interface GlobalOptions {
  addr: string;
  token: string | undefined;
  timeout: number;
  json: boolean;
  tls: boolean;
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
}

/** The global options as `cmd` sees them: given, from the environment, or the defaults; empty text is absent. */
export function globalOptions(cmd: Command): GlobalOptions {
  const all = cmd.optsWithGlobals<Record<string, unknown>>();
  const text = (name: string) => {
    const value = all[name];
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  return {
    addr: text("addr") ?? DEFAULT_ADDR,
    token: text("token"),
    timeout: typeof all.timeout === "number" ? all.timeout : DEFAULT_DEADLINE_MS,
    json: all.json === true,
    tls: all.tls === true,
    ca: text("ca"),
    cert: text("cert"),
    key: text("key"),
  };
}

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
  /**
   * A signal that aborts on Ctrl-C (SIGINT) or SIGTERM. Until it is asked
   * for, those signals end the process as usual; from then on they abort it.
   */
  interrupted(): AbortSignal;
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

export type Handler<O> = (ctx: Context, options: O, args: string[]) => Promise<void>;

/** How command files add their commands: with the global options and error handling in place. */
export interface Cli {
  /** A subcommand of `parent`; it takes the global options too. */
  command(parent: Command, nameAndArgs: string, description: string): Command;
  /** An action that gets a context, and whose errors become one line and an exit code. */
  action<O>(handler: Handler<O>): (...params: unknown[]) => Promise<void>;
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

/** The SDK's `tls` option from --tls, --ca, --cert and --key. */
function tlsSettings(g: GlobalOptions): boolean | TlsOptions {
  if ((g.cert === undefined) !== (g.key === undefined)) {
    throw new UsageError("--cert and --key go together: give both for mutual TLS, or neither");
  }
  if (g.ca === undefined && g.cert === undefined) return g.tls;
  return { ca: readPem("--ca", g.ca), cert: readPem("--cert", g.cert), key: readPem("--key", g.key) };
}

function readPem(flag: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read the ${flag} file ${path}${code ? ` (${code})` : ""}`, { cause: err });
  }
}
