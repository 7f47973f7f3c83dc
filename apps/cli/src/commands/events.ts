import { Option, type Command } from "commander";
import type { Event } from "@httpqueue/sdk";
import type { Cli } from "../context.js";
import { countJson, eventJson } from "../output/json.js";
import { formatCounts, formatTime, oneLine, type Colors } from "../output/style.js";
import { details, table } from "../output/table.js";
import { readPayload } from "../payload.js";
import { collectKeyValue, parsePositiveInt, parseTimeAgo, parseSeconds } from "../parse.js";

interface ListOptions {
  namespace?: string;
  event?: string;
  since?: Date;
  until?: Date;
  limit?: number;
  pageToken?: string;
  all?: boolean;
}

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
    .command(program, "events", "push, inspect and list events")
    .alias("event")
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl events push --namespace user --event signup '{"id": 42}'
  $ webhookctl events list --namespace user --since 1h`,
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
      parseSeconds,
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

  cli
    .command(events, "get <event-id>", "show an event, its payload, and how many of its deliveries are in each status")
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl events get 0190a0d4-8c2e-7f3b-a011-4d3e2f1a5b6c
  $ webhookctl events get 0190a0d4-8c2e-7f3b-a011-4d3e2f1a5b6c --json | jq -r .event.payload
  $ webhookctl status --event 0190a0d4-8c2e-7f3b-a011-4d3e2f1a5b6c   (its deliveries)`,
    )
    .action(
      cli.action(async (ctx, _o, [eventId = ""]) => {
        const { event, counts } = await ctx.client.getEvent({ eventId });
        ctx.print(
          () =>
            event
              ? eventDetails(ctx.c, event, { payload: "full", more: [["Deliveries", formatCounts(ctx.c, counts)]] })
              : "",
          () => ({ event: event ? eventJson(event) : null, counts: counts.map(countJson) }),
        );
      }),
    );

  cli
    .command(events, "list", "list events, newest first (without their payloads)")
    .alias("ls")
    .option("--namespace <name>", "only this namespace's events")
    .option("--event <name>", "only events of this name (with --namespace)")
    .option(
      "--since <when>",
      "only events created since: a duration back from now (1h, 7d) or an ISO 8601 time",
      parseTimeAgo,
    )
    .option("--until <when>", "only events created before: a duration back from now or an ISO 8601 time", parseTimeAgo)
    .addOption(new Option("--limit <n>", "events per page, 1 to 1000 (default: 100)").argParser(parsePositiveInt))
    .addOption(new Option("--page-token <token>", "continue after a previous page (its nextPageToken)"))
    .addOption(new Option("--all", "every page, not just one").conflicts("pageToken"))
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl events list --namespace user --event signup --since 1h
  $ webhookctl events list --since 2026-11-28T00:00:00Z --until 2026-11-29T00:00:00Z --all
  $ webhookctl events list --since 7d --all --json | jq -r '.events[].id'`,
    )
    .action(
      cli.action<ListOptions>(async (ctx, o) => {
        const filters = {
          namespace: o.namespace,
          event: o.event,
          createdAfter: o.since,
          createdBefore: o.until,
          pageSize: o.limit,
        };
        let events: Event[] = [];
        let nextPageToken = "";
        if (o.all) {
          for await (const e of ctx.client.listEventsAsync(filters)) events.push(e);
        } else {
          ({ events, nextPageToken } = await ctx.client.listEvents({ ...filters, pageToken: o.pageToken }));
        }
        ctx.print(
          () => (events.length === 0 ? "No events.\n" : eventTable(ctx.c, events)),
          () => ({ events: events.map(eventJson), nextPageToken }),
        );
        if (nextPageToken && !ctx.globals.json) {
          ctx.note(`More events: add --page-token ${nextPageToken}, or --all for every page.`);
        }
      }),
    );
}

/** An event as a list of fields; the payload cut to one line unless `full`. */
export function eventDetails(
  c: Colors,
  e: Event,
  options: { payload: "full" | "line"; more?: [string, string][] },
): string {
  return details(c, [
    ["Event", e.id],
    ["Namespace", e.namespace],
    ["Name", e.event],
    ["Payload", payloadField(e, options.payload)],
    [
      "Metadata",
      Object.entries(e.metadata)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ") || "-",
    ],
    ["Idempotency key", e.idempotencyKey || "-"],
    ["Ordering key", e.orderingKey || "-"],
    ["Created", formatTime(e.createdAt)],
    ["Expires", formatTime(e.expiresAt)],
    ...(options.more ?? []),
  ]);
}

/** The payload (whole or on one line), or when retention removed it (it is empty then). */
function payloadField(e: Event, form: "full" | "line"): string {
  if (e.payloadRemovedAt) return `removed by retention ${formatTime(e.payloadRemovedAt)}`;
  return form === "full" ? prettyJson(e.payload) : oneLine(e.payload, 100);
}

/** The payload indented for reading; as it is when it is not JSON. */
function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function eventTable(c: Colors, events: Event[]): string {
  return table(
    c,
    ["ID", "NAMESPACE", "EVENT", "CREATED", "IDEMPOTENCY KEY", "METADATA"],
    events.map((e) => [
      e.id,
      e.namespace,
      e.event,
      formatTime(e.createdAt),
      e.idempotencyKey || "-",
      oneLine(
        Object.entries(e.metadata)
          .map(([k, v]) => `${k}=${v}`)
          .join(", "),
        40,
      ) || "-",
    ]),
  );
}
