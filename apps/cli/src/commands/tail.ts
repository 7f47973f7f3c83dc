import type { Command } from "commander";
import type { WatchDeliveriesResponse } from "@httpqueue/sdk";
import type { Cli } from "../context.js";
import { changeJson } from "../output/json.js";
import { colorCode, colorStatus, formatDuration, statusName, type Colors } from "../output/style.js";

interface TailOptions {
  namespace?: string;
  webhook?: string;
  eventId?: string;
}

// The longest status name (CANCELLED, SUCCEEDED), so that the columns after it line up.
const STATUS_WIDTH = 9;

export function registerTailCommand(program: Command, cli: Cli): void {
  cli
    .command(program, "tail", "follow deliveries as they happen: one line per attempt or change of state")
    .option("--namespace <name>", "only deliveries of this namespace's events")
    .option("--webhook <webhook-id>", "only deliveries to this webhook")
    .option("--event-id <event-id>", "only deliveries of this event")
    .addHelpText(
      "after",
      `
Each line: when, status, HTTP response code, duration, namespace/event, webhook,
delivery, attempt (and the error, if any). With --json, one JSON object per line
(NDJSON) with every field. Runs until Ctrl-C; a server that ends the stream
(e.g. RESOURCE_EXHAUSTED when this terminal reads too slowly) makes it exit 1.
--timeout does not apply: the stream lasts as long as you watch.

Examples:
  $ webhookctl tail
  $ webhookctl tail --namespace user --webhook 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b
  $ webhookctl tail --json | jq -c 'select(.status == "DELIVERY_STATUS_FAILED")'`,
    )
    .action(
      cli.action<TailOptions>(async (ctx, o) => {
        const stop = ctx.io.interrupted();
        const watch = ctx.client.watchDeliveries(
          { namespace: o.namespace, webhookId: o.webhook, eventId: o.eventId },
          { signal: stop },
        );
        void watch.ready.then(
          () => {
            ctx.note("Watching deliveries (Ctrl-C to stop).");
          },
          () => undefined,
        );
        for await (const change of watch) {
          ctx.io.stdout.write(
            ctx.globals.json ? `${JSON.stringify(changeJson(change))}\n` : `${changeLine(ctx.c, change)}\n`,
          );
        }
      }),
    );
}

/** "2026-11-28T12:00:01.234Z  SUCCEEDED  200  35ms  user/signup  webhook W  delivery D  attempt 1". */
function changeLine(c: Colors, change: WatchDeliveriesResponse): string {
  const { attempt } = change;
  const fields = [
    change.changedAt?.toISOString() ?? "-",
    colorStatus(c, change.status) + " ".repeat(Math.max(0, STATUS_WIDTH - statusName(change.status).length)),
    attempt ? colorCode(c, attempt.responseCode, 3) : "  -",
    (attempt ? formatDuration(attempt.durationMs) : "-").padStart(6),
    `${change.namespace}/${change.event}`,
    `webhook ${change.webhookId}`,
    `delivery ${change.deliveryId}`,
    `attempt ${attempt?.attempt ?? change.attemptCount}`,
  ];
  const error = attempt?.errorMessage || change.errorMessage;
  if (error) fields.push(c.dim(error.replace(/\s+/g, " ")));
  return fields.join("  ");
}
