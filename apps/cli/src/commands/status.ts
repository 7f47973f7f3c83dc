import { Option, type Command } from "commander";
import type { Delivery, GetWebhookStatusResponse } from "@httpqueue/sdk";
import type { Context } from "../context.js";
import { UsageError } from "../errors.js";
import { countJson, deliveryJson, eventJson, webhookJson } from "../output/json.js";
import { colorStatus, compactJson, formatCounts, formatTime, oneLine, type Colors } from "../output/style.js";
import { details, table } from "../output/table.js";
import { eventDetails } from "./events.js";
import { parsePositiveInt } from "../parse.js";
import type { Cli } from "../context.js";

interface StatusOptions {
  webhook?: string;
  event?: string;
  limit?: number;
  pageToken?: string;
}

export function registerStatusCommand(program: Command, cli: Cli): void {
  cli
    .command(program, "status", "show deliveries: of one webhook (newest first, paged) or of one event (all of them)")
    .addOption(new Option("--webhook <webhook-id>", "the deliveries of this webhook, with counts per status"))
    .addOption(new Option("--event <event-id>", "the deliveries of this event").conflicts("webhook"))
    .addOption(new Option("--limit <n>", "deliveries per page, 1 to 1000 (default: 20)").argParser(parsePositiveInt))
    .addOption(new Option("--page-token <token>", "continue after a previous page (its nextPageToken)"))
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl status --event 0190a0d4-8c2e-7f3b-a011-4d3e2f1a5b6c
  $ webhookctl status --webhook 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --limit 50
  $ webhookctl status --webhook 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --json | jq '.deliveries[] | select(.status == "DELIVERY_STATUS_FAILED")'`,
    )
    .action(
      cli.action<StatusOptions>(async (ctx, o) => {
        if (o.event !== undefined) {
          if (o.limit !== undefined || o.pageToken !== undefined) {
            throw new UsageError(
              "--limit and --page-token apply to --webhook; --event shows all of an event's deliveries",
            );
          }
          await eventStatus(ctx, o.event);
        } else if (o.webhook !== undefined) {
          await webhookStatus(ctx, o.webhook, o);
        } else {
          throw new UsageError("say whose deliveries to show: --webhook <webhook-id> or --event <event-id>");
        }
      }),
    );
}

async function eventStatus(ctx: Context, eventId: string) {
  const { event } = await ctx.client.getEvent({ eventId });
  const deliveries: Delivery[] = [];
  for await (const d of ctx.client.listDeliveriesAsync({ eventId })) deliveries.push(d);
  const { c } = ctx;
  ctx.print(
    () => `${event ? eventDetails(c, event, { payload: "line" }) : ""}\n${deliveryTable(c, deliveries, "event")}`,
    () => ({ event: event && eventJson(event), deliveries: deliveries.map(deliveryJson) }),
  );
}

async function webhookStatus(ctx: Context, webhookId: string, o: StatusOptions) {
  const res: GetWebhookStatusResponse = await ctx.client.getWebhookStatus({
    webhookId,
    pageSize: o.limit,
    pageToken: o.pageToken,
  });
  const { c } = ctx;
  ctx.print(
    () => {
      const w = res.webhook;
      const head = w
        ? details(c, [
            ["Webhook", w.id],
            ["Target", `${w.method} ${w.url}`],
            ["Events", `${w.namespace}/${w.event}`],
            ...(w.filter ? ([["Filter", compactJson(w.filter)]] as [string, string][]) : []),
            ["Active", w.active ? c.green("yes") : c.dim("no")],
            ["Deliveries", formatCounts(c, res.counts)],
          ])
        : "";
      return `${head}\n${deliveryTable(c, res.deliveries, "webhook")}`;
    },
    () => ({
      webhook: res.webhook && webhookJson(res.webhook),
      counts: res.counts.map(countJson),
      deliveries: res.deliveries.map(deliveryJson),
      nextPageToken: res.nextPageToken,
    }),
  );
  if (res.nextPageToken && !ctx.globals.json) {
    ctx.note(`More deliveries: add --page-token ${res.nextPageToken}`);
  }
}

/** By webhook, each row names the event; by event, the webhook. */
function deliveryTable(c: Colors, deliveries: Delivery[], by: "webhook" | "event"): string {
  if (deliveries.length === 0) return "No deliveries.\n";
  return table(
    c,
    [
      "DELIVERY",
      by === "webhook" ? "EVENT" : "WEBHOOK",
      "STATUS",
      "ATTEMPTS",
      "HTTP",
      "LAST ATTEMPT",
      "NEXT / DONE",
      "ERROR",
    ],
    deliveries.map((d) => [
      d.id,
      by === "webhook" ? d.eventId : d.webhookId,
      colorStatus(c, d.status),
      `${d.attemptCount}/${d.maxAttempts}`,
      d.responseCode === 0 ? "-" : String(d.responseCode),
      formatTime(d.lastAttemptAt),
      d.completedAt ? formatTime(d.completedAt) : formatTime(d.nextAttemptAt),
      d.errorMessage ? oneLine(d.errorMessage, 50) : "-",
    ]),
  );
}
