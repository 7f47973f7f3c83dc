import { readFileSync } from "node:fs";
import { Option, type Command } from "commander";
import type { TlsOptions } from "@httpqueue/sdk";
import { UsageError } from "./errors.js";
import { parseDeadline } from "./parse.js";

export const DEFAULT_ADDR = "127.0.0.1:50051";
export const DEFAULT_DEADLINE_MS = 10_000;

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

type GlobalName = keyof GlobalOptions;

/**
 * The options every command takes. They are declared on every command, not
 * only on the program, so that they work after the command name
 * (`webhookctl webhooks list --json`) while a command may still give one of
 * the names its own meaning (`webhooks register --timeout` is the webhook's).
 */
function globalOptions(): Option[] {
  return [
    new Option("--addr <host:port>", "address of the httpqueue server").env("WEBHOOKCTL_ADDR").default(DEFAULT_ADDR),
    new Option(
      "--token <token>",
      "API token, sent as a bearer token (prefer the variable: arguments are visible to other users)",
    ).env("WEBHOOKCTL_TOKEN"),
    new Option("--timeout <duration>", "deadline of each call, e.g. 10s, 500ms, 2m")
      .env("WEBHOOKCTL_TIMEOUT")
      .argParser(parseDeadline)
      .default(DEFAULT_DEADLINE_MS, "10s"),
    new Option("--json", "print JSON on stdout; messages and errors go to stderr"),
    new Option("--tls", "connect with TLS, trusting the system's CAs unless --ca is given"),
    new Option("--ca <file>", "PEM file of the CA that signed the server's certificate (implies --tls)"),
    new Option("--cert <file>", "PEM client certificate, for mutual TLS (implies --tls; needs --key)"),
    new Option("--key <file>", "PEM private key of --cert"),
  ];
}

const declared = new WeakMap<Command, Set<string>>();

/** Declares the global options on `cmd`, except those it already defines itself. */
export function addGlobalOptions(cmd: Command, group?: string): Command {
  const names = new Set<string>();
  for (const option of globalOptions()) {
    const name = option.attributeName();
    if (cmd.options.some((own) => own.attributeName() === name)) continue;
    if (group) option.helpGroup(group);
    cmd.addOption(option);
    names.add(name);
  }
  declared.set(cmd, names);
  return cmd;
}

/**
 * The global options as given: the one nearest the command wins, then the
 * program's (which also reads the environment and defaults).
 */
export function resolveGlobalOptions(cmd: Command): GlobalOptions {
  const chain: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) chain.push(c);
  const root = chain.at(-1) ?? cmd;
  const value = (name: GlobalName): unknown => {
    for (const c of chain) {
      if (declared.get(c)?.has(name) && c.getOptionValueSource(name) === "cli") return c.getOptionValue(name);
    }
    return root.getOptionValue(name);
  };
  const text = (name: GlobalName) =>
    typeof value(name) === "string" && value(name) !== "" ? (value(name) as string) : undefined;
  return {
    addr: text("addr") ?? DEFAULT_ADDR,
    token: text("token"),
    timeout: value("timeout") as number,
    json: value("json") === true,
    tls: value("tls") === true,
    ca: text("ca"),
    cert: text("cert"),
    key: text("key"),
  };
}

/** The SDK's `tls` option from --tls, --ca, --cert and --key. */
export function tlsSettings(g: GlobalOptions): boolean | TlsOptions {
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
