import { createRequire } from "node:module";
import { Command, CommanderError } from "commander";
import { registerEventCommands } from "./commands/events.js";
import { registerStatusCommand } from "./commands/status.js";
import { registerWebhookCommands } from "./commands/webhooks.js";
import { createContext, type Context, type Io } from "./context.js";
import { describeError, EXIT } from "./errors.js";
import { addGlobalOptions, DEFAULT_ADDR, DEFAULT_DEADLINE_MS, resolveGlobalOptions } from "./globals.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

export type Handler<O> = (ctx: Context, options: O, args: string[]) => Promise<void>;

/** How command files add their commands: with the global options and error handling in place. */
export interface Cli {
  /**
   * A subcommand of `parent`. It takes the global options too, except those
   * it defines itself (`webhooks register --timeout` is the webhook's).
   */
  command(parent: Command, nameAndArgs: string, description: string): Command;
  /** An action that gets a context, and whose errors become one line and an exit code. */
  action<O>(handler: Handler<O>): (...params: unknown[]) => Promise<void>;
}

const GLOBAL_GROUP = "Global Options:";

/** Runs webhookctl with `argv` (the arguments after the program name); resolves with the exit code. */
export async function run(argv: string[], io: Io): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = new Command("webhookctl");
  program
    .description("Manage webhooks, push events and follow their delivery on an httpqueue server.")
    .version(version, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .enablePositionalOptions()
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
  addGlobalOptions(program);

  const cli: Cli = {
    command(parent, nameAndArgs, description) {
      return parent.command(nameAndArgs).description(description);
    },
    action<O>(handler: Handler<O>) {
      return async (...params: unknown[]) => {
        const cmd = params.at(-1) as Command;
        const globals = resolveGlobalOptions(cmd);
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
  program.addHelpText(
    "after",
    `
Examples:
  $ webhookctl webhooks register --namespace user --event signup --url https://example.com/hooks/signup
  $ webhookctl events push --namespace user --event signup '{"id": 42}'
  $ webhookctl status --event <event-id>
  $ webhookctl webhooks list --json | jq -r '.webhooks[].id'

Environment: WEBHOOKCTL_ADDR (default ${DEFAULT_ADDR}), WEBHOOKCTL_TOKEN, WEBHOOKCTL_TIMEOUT,
NO_COLOR. Exit codes: 0 ok, 1 error from the server (or none reachable), 2 bad usage,
4 unauthenticated.
`,
  );
  for (const cmd of allCommands(program)) {
    // Added last, so that help lists a command's own options first.
    if (cmd !== program) addGlobalOptions(cmd, GLOBAL_GROUP);
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
