import { createRequire } from "node:module";
import { Command, CommanderError, Option } from "commander";
import { registerAttemptCommands } from "./commands/attempts.js";
import { registerDeliveryCommands } from "./commands/deliveries.js";
import { registerEventCommands } from "./commands/events.js";
import { registerStatusCommand } from "./commands/status.js";
import { registerTailCommand } from "./commands/tail.js";
import { registerWebhookCommands } from "./commands/webhooks.js";
import {
  createContext,
  DEFAULT_ADDR,
  DEFAULT_DEADLINE_MS,
  globalOptions,
  type Cli,
  type Context,
  type Handler,
  type Io,
} from "./context.js";
import { describeError, EXIT } from "./errors.js";
import { parseDeadline } from "./parse.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

/**
 * The options every command takes. Declared once, on the program: commander
 * reads them before or after the command name (`webhookctl webhooks list --json`),
 * and help lists them under each command's "Global Options".
 */
function declareGlobalOptions(program: Command): void {
  program
    .addOption(
      new Option("--addr <host:port>", "address of the httpqueue server").env("WEBHOOKCTL_ADDR").default(DEFAULT_ADDR),
    )
    .addOption(
      new Option(
        "--token <token>",
        "API token, sent as a bearer token (prefer the variable: arguments are visible to other users)",
      ).env("WEBHOOKCTL_TOKEN"),
    )
    .addOption(
      new Option("--timeout <duration>", "deadline of each call, e.g. 10s, 500ms, 2m")
        .env("WEBHOOKCTL_TIMEOUT")
        .argParser(parseDeadline)
        .default(DEFAULT_DEADLINE_MS, "10s"),
    )
    .addOption(new Option("--json", "print JSON on stdout; messages and errors go to stderr"))
    .addOption(new Option("--tls", "connect with TLS, trusting the system's CAs unless --ca is given"))
    .addOption(new Option("--ca <file>", "PEM file of the CA that signed the server's certificate (implies --tls)"))
    .addOption(new Option("--cert <file>", "PEM client certificate, for mutual TLS (implies --tls; needs --key)"))
    .addOption(new Option("--key <file>", "PEM private key of --cert"));
}

/** Runs webhookctl with `argv` (the arguments after the program name); resolves with the exit code. */
export async function run(argv: string[], io: Io): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = new Command("webhookctl");
  program
    .description("Manage webhooks, push events and follow their delivery on an httpqueue server.")
    .version(version, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .configureHelp({ showGlobalOptions: true })
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
  declareGlobalOptions(program);

  const cli: Cli = {
    command(parent, nameAndArgs, description) {
      return parent.command(nameAndArgs).description(description);
    },
    action<O>(handler: Handler<O>) {
      return async (...params: unknown[]) => {
        const cmd = params.at(-1) as Command;
        const globals = globalOptions(cmd);
        let ctx: Context | undefined;
        try {
          ctx = createContext(io, globals, version);
          await handler(ctx, cmd.opts() as O, cmd.processedArgs as string[]);
        } catch (err) {
          exitCode = report(io, err, cmd, globals.addr, globals.timeout);
        } finally {
          ctx?.close();
        }
      };
    },
  };

  registerWebhookCommands(program, cli);
  registerEventCommands(program, cli);
  registerStatusCommand(program, cli);
  registerDeliveryCommands(program, cli);
  registerAttemptCommands(program, cli);
  registerTailCommand(program, cli);
  program.addHelpText(
    "after",
    `
Examples:
  $ webhookctl webhooks register --namespace user --event signup --url https://example.com/hooks/signup
  $ webhookctl events push --namespace user --event signup '{"id": 42}'
  $ webhookctl status --event <event-id>
  $ webhookctl tail --namespace user
  $ webhookctl webhooks list --json | jq -r '.webhooks[].id'

Environment: WEBHOOKCTL_ADDR (default ${DEFAULT_ADDR}), WEBHOOKCTL_TOKEN, WEBHOOKCTL_TIMEOUT,
NO_COLOR. Exit codes: 0 ok, 1 error from the server (or none reachable), 2 bad usage,
4 unauthenticated.
`,
  );
  for (const cmd of allCommands(program)) {
    cmd.showHelpAfterError(`(Run '${commandPath(cmd)} --help' for usage.)`);
  }

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    // Commander has printed its own errors (unknown option, missing argument, ...).
    if (err instanceof CommanderError) return describeError(err, DEFAULT_ADDR, DEFAULT_DEADLINE_MS).exitCode;
    return report(io, err, program, DEFAULT_ADDR, DEFAULT_DEADLINE_MS);
  }
  return exitCode;
}

function report(io: Io, err: unknown, cmd: Command, address: string, deadlineMs: number): number {
  const { exitCode, message, usage } = describeError(err, address, deadlineMs);
  io.stderr.write(`error: ${message}\n`);
  if (usage) io.stderr.write(`(Run '${commandPath(cmd)} --help' for usage.)\n`);
  if (io.env.WEBHOOKCTL_DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
  return exitCode;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}
