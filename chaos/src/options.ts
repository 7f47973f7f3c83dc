export class UsageError extends Error {
  override name = "UsageError";
}

export interface CliOptions {
  /** Scenario names, in the order given; empty: all of them. */
  names: string[];
  smoke: boolean;
  seed: number | undefined;
  size: number | undefined;
}

export const USAGE = `usage: pnpm chaos [scenario...] [options]

Scenarios (all five when none is named):
  kill          SIGKILL the server twice while 3,000 events are pushed and delivered
  postgres      restart PostgreSQL (one of the run's own) in the middle of the load
  receiver      a receiver that fails 30 %, hangs 10 % and resets 5 % of requests
  two-servers   two servers on one database, one of them killed and restarted
  hostile       10,000 hostile requests over every RPC, then a normal delivery

Options:
  --smoke       the short variant the tests run (small numbers, one fault)
  --size <n>    events to push (hostile: requests to send) instead of the default
  --seed <n>    the random seed (printed with each run), to repeat a run
  --help        this text

Each scenario prints a table of figures; the exit code is 1 when a promise was
broken (an acknowledged event lost, an INTERNAL status…), 2 for a usage error.
`;

export function parseOptions(args: readonly string[], known: readonly string[]): CliOptions | "help" {
  const options: CliOptions = { names: [], smoke: false, seed: undefined, size: undefined };
  const number = (flag: string, value: string | undefined) => {
    if (value === undefined || !/^\d+$/.test(value)) throw new UsageError(`${flag} takes a whole number`);
    return Number(value);
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? arg.split("=", 2) : [arg, undefined];
    const value = () => inline ?? args[++i];
    switch (flag) {
      case "--help":
      case "-h":
        return "help";
      case "--smoke":
        options.smoke = true;
        break;
      case "--seed":
        options.seed = number("--seed", value());
        break;
      case "--size":
        options.size = number("--size", value());
        if (options.size === 0) throw new UsageError("--size must be at least 1");
        break;
      case "--":
        break;
      default:
        if (arg.startsWith("-")) throw new UsageError(`unknown option ${arg}`);
        if (!known.includes(arg)) throw new UsageError(`unknown scenario "${arg}": one of ${known.join(", ")}`);
        if (!options.names.includes(arg)) options.names.push(arg);
    }
  }
  return options;
}
