import type { Command } from "commander";
import { readPayload } from "../payload.js";
import { collectKeyValue, parseTtl } from "../parse.js";
import type { Cli } from "../program.js";

interface PushOptions {
  namespace: string;
  event: string;
  ttl?: number;
  metadata?: Record<string, string>;
  idempotencyKey?: string;
  orderingKey?: string;
}

export function registerEventCommands(program: Command, cli: Cli): void {
  const events = cli
    .command(program, "events", "push events")
    .alias("event")
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl events push --namespace user --event signup '{"id": 42}'`,
    );

  cli
    .command(
      events,
      "push [payload]",
      "push an event: it is stored, then delivered to every active webhook of its namespace/event",
    )
    .requiredOption("--namespace <name>", "namespace of the event, e.g. user (required)")
    .requiredOption("--event <name>", "event name, e.g. signup (required)")
    .option(
      "--ttl <duration>",
      "how long deliveries may be attempted: seconds, or 15m, 1h, 7d (default: the server's)",
      parseTtl,
    )
    .option("--metadata <key=value>", "metadata stored with the event (repeatable)", collectKeyValue)
    .option("--idempotency-key <key>", "a repeat push with the same key (per namespace) delivers nothing new")
    .option(
      "--ordering-key <key>",
      "to webhooks registered --ordered, events with the same key are delivered one after another, in push order",
    )
    .addHelpText(
      "after",
      `
The payload is a JSON document, sent byte for byte: the argument itself, @file
to read a file, or - to read stdin (also read when no payload is given and
stdin is not a terminal).

Examples:
  $ webhookctl events push --namespace user --event signup '{"id": 42, "email": "ada@example.com"}'
  $ webhookctl events push --namespace user --event signup @signup.json --idempotency-key signup-42
  $ jq -c . signup.json | webhookctl events push --namespace user --event signup --ttl 1h -
  $ webhookctl events push --namespace order --event updated --ordering-key order-42 '{"id": 42, "state": "paid"}'`,
    )
    .action(
      cli.action<PushOptions>(async (ctx, o, [arg]) => {
        const payload = await readPayload(arg, ctx.io.stdin);
        const { eventId, duplicate } = await ctx.client.pushEvent({
          namespace: o.namespace,
          event: o.event,
          payload,
          ttlSeconds: o.ttl,
          metadata: o.metadata,
          idempotencyKey: o.idempotencyKey,
          orderingKey: o.orderingKey,
        });
        ctx.print(
          () =>
            duplicate
              ? `Event ${eventId} was already pushed with idempotency key ${o.idempotencyKey ?? ""}: nothing new is delivered.\n`
              : `Pushed event ${eventId} (${o.namespace}/${o.event}).\nFollow its deliveries: webhookctl status --event ${eventId}\n`,
          () => ({ eventId, duplicate }),
        );
      }),
    );
}
