import { Option, type Command } from "commander";
import type { DeliveryCount, UpdateWebhookRequest, Webhook } from "@httpqueue/sdk";
import { UsageError } from "../errors.js";
import { countJson, webhookJson } from "../output/json.js";
import { colorStatus, formatTime, oneLine, type Colors } from "../output/style.js";
import { details, table } from "../output/table.js";
import { collectHeader, parsePositiveInt } from "../parse.js";
import type { Cli } from "../program.js";

interface RegisterOptions {
  namespace: string;
  event: string;
  url: string;
  method?: string;
  header?: Record<string, string>;
  timeout?: number;
  inactive?: boolean;
  description?: string;
}

interface ListOptions {
  namespace?: string;
  limit: number;
  pageToken?: string;
  all?: boolean;
}

interface UpdateOptions {
  url?: string;
  method?: string;
  header?: Record<string, string>;
  clearHeaders?: boolean;
  timeout?: number;
  active?: boolean;
  inactive?: boolean;
  description?: string;
}

const METHODS = "GET, POST, PUT, PATCH or DELETE";

export function registerWebhookCommands(program: Command, cli: Cli): void {
  const webhooks = cli
    .command(program, "webhooks", "register, list, inspect, change and remove webhooks")
    .alias("webhook")
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl webhooks register --namespace user --event signup --url https://example.com/hooks/signup
  $ webhookctl webhooks list --namespace user`,
    );

  cli
    .command(webhooks, "register", "register a webhook for a namespace/event pair and print its signing secret")
    .requiredOption("--namespace <name>", "namespace of the events, e.g. user (required)")
    .requiredOption("--event <name>", "event name, e.g. signup (required)")
    .requiredOption("--url <url>", "absolute http or https URL that receives the deliveries (required)")
    .option("--method <method>", `HTTP method: ${METHODS} (default: POST)`)
    .option("--header <name: value>", "custom header sent with every delivery (repeatable)", collectHeader)
    .option(
      "--timeout <seconds>",
      "HTTP timeout of each delivery, 1 to 300 seconds (default: 30). For the call's own deadline, put --timeout before the command (webhookctl --timeout 30s webhooks register ...) or set WEBHOOKCTL_TIMEOUT",
      parsePositiveInt,
    )
    .option("--inactive", "register it inactive: it receives nothing until activated")
    .option("--description <text>", "free text for people")
    .addHelpText(
      "after",
      `
The signing secret (whsec_...) is shown only once: store it with the receiver,
which checks each delivery's webhook-signature with it (see verifyWebhook in
@httpqueue/sdk, or any Standard Webhooks library).

Examples:
  $ webhookctl webhooks register --namespace user --event signup \\
      --url https://example.com/hooks/signup --header 'Authorization: Bearer abc' --timeout 10
  $ webhookctl webhooks register --namespace user --event signup --url https://example.com/h --json | jq -r .signingSecret`,
    )
    .action(
      cli.action<RegisterOptions>(async (ctx, o) => {
        const res = await ctx.client.registerWebhook({
          namespace: o.namespace,
          event: o.event,
          url: o.url,
          method: o.method,
          headers: o.header,
          timeout: o.timeout,
          active: o.inactive ? false : undefined,
          description: o.description,
        });
        ctx.print(
          () =>
            `Registered webhook ${res.webhookId}\n\n${webhookDetails(ctx.c, res.webhook)}\n` +
            `${ctx.c.bold("Signing secret")} (shown only once: store it with the receiver)\n  ${res.signingSecret}\n`,
          () => ({
            webhookId: res.webhookId,
            webhook: res.webhook && webhookJson(res.webhook),
            signingSecret: res.signingSecret,
            warnings: res.warnings,
          }),
        );
        for (const warning of res.warnings) ctx.note(`warning: ${warning}`);
      }),
    );

  cli
    .command(webhooks, "list", "list webhooks, oldest first")
    .alias("ls")
    .option("--namespace <name>", "only this namespace's webhooks")
    .option("--limit <n>", "webhooks per page, 1 to 1000", parsePositiveInt, 100)
    .option("--page-token <token>", "continue after a previous page (its nextPageToken)")
    .addOption(new Option("--all", "every page, not just one").conflicts("pageToken"))
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl webhooks list --namespace user
  $ webhookctl webhooks list --all --json | jq -r '.webhooks[] | select(.active) | .url'`,
    )
    .action(
      cli.action<ListOptions>(async (ctx, o) => {
        let webhooks: Webhook[] = [];
        let nextPageToken = "";
        if (o.all) {
          for await (const w of ctx.client.listWebhooksAsync({ namespace: o.namespace, pageSize: o.limit })) {
            webhooks.push(w);
          }
        } else {
          ({ webhooks, nextPageToken } = await ctx.client.listWebhooks({
            namespace: o.namespace,
            pageSize: o.limit,
            pageToken: o.pageToken,
          }));
        }
        ctx.print(
          () => (webhooks.length === 0 ? "No webhooks.\n" : webhookTable(ctx.c, webhooks)),
          () => ({ webhooks: webhooks.map(webhookJson), nextPageToken }),
        );
        if (nextPageToken && !ctx.globals.json) {
          ctx.note(`More webhooks: add --page-token ${nextPageToken}, or --all for every page.`);
        }
      }),
    );

  cli
    .command(webhooks, "get <webhook-id>", "show a webhook and how many of its deliveries are in each status")
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl webhooks get 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b
  $ webhookctl status --webhook 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b   (its deliveries)`,
    )
    .action(
      cli.action(async (ctx, _o, [webhookId = ""]) => {
        const res = await ctx.client.getWebhookStatus({ webhookId, pageSize: 1 });
        ctx.print(
          () => webhookDetails(ctx.c, res.webhook, res.counts),
          () => ({ webhook: res.webhook && webhookJson(res.webhook), counts: res.counts.map(countJson) }),
        );
      }),
    );

  cli
    .command(webhooks, "update <webhook-id>", "change a webhook: only the options given change")
    .option("--url <url>", "new URL")
    .option("--method <method>", `new HTTP method: ${METHODS}`)
    .option("--header <name: value>", "replace all custom headers with these (repeatable)", collectHeader)
    .addOption(new Option("--clear-headers", "remove all custom headers").conflicts("header"))
    .option("--timeout <seconds>", "new HTTP timeout of each delivery, 1 to 300 seconds", parsePositiveInt)
    .option("--active", "activate it")
    .addOption(new Option("--inactive", "deactivate it: pending deliveries are cancelled").conflicts("active"))
    .option("--description <text>", "new description (empty to clear)")
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl webhooks update 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --url https://example.com/v2/signup --timeout 15
  $ webhookctl webhooks update 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --inactive`,
    )
    .action(
      cli.action<UpdateOptions>(async (ctx, o, [webhookId = ""]) => {
        const request: Partial<UpdateWebhookRequest> = { webhookId };
        if (o.url !== undefined) request.url = o.url;
        if (o.method !== undefined) request.method = o.method;
        if (o.header !== undefined) request.headers = { values: o.header };
        if (o.clearHeaders) request.headers = { values: {} };
        if (o.timeout !== undefined) request.timeout = o.timeout;
        if (o.active) request.active = true;
        if (o.inactive) request.active = false;
        if (o.description !== undefined) request.description = o.description;
        if (Object.keys(request).length === 1) {
          throw new UsageError(
            "nothing to update: give at least one of --url, --method, --header, --clear-headers, --timeout, --active, --inactive, --description",
          );
        }
        const { webhook, warnings } = await ctx.client.updateWebhook(request);
        ctx.print(
          () => `Updated webhook ${webhookId}\n\n${webhookDetails(ctx.c, webhook)}`,
          () => ({ webhook: webhook && webhookJson(webhook), warnings }),
        );
        for (const warning of warnings) ctx.note(`warning: ${warning}`);
      }),
    );

  cli
    .command(webhooks, "unregister <webhook-id>", "remove a webhook and cancel its pending deliveries")
    .alias("rm")
    .addHelpText(
      "after",
      `
Its past deliveries stay visible through 'webhookctl status --event <event-id>'.

Examples:
  $ webhookctl webhooks unregister 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b`,
    )
    .action(
      cli.action(async (ctx, _o, [webhookId = ""]) => {
        const { cancelledDeliveries } = await ctx.client.unregisterWebhook({ webhookId });
        ctx.print(
          () =>
            `Unregistered webhook ${webhookId}; cancelled ${cancelledDeliveries} pending ${cancelledDeliveries === 1 ? "delivery" : "deliveries"}.\n`,
          () => ({ webhookId, cancelledDeliveries }),
        );
      }),
    );
}

export function webhookDetails(c: Colors, w: Webhook | undefined, counts?: DeliveryCount[]): string {
  if (!w) return "";
  const headers = Object.entries(w.headers).map(([name, value]) => `${name}: ${value}`);
  const fields: [string, string][] = [
    ["ID", w.id],
    ["Namespace", w.namespace],
    ["Event", w.event],
    ["URL", w.url],
    ["Method", w.method],
    ["Headers", headers.length > 0 ? headers.join("\n") : "-"],
    ["Timeout", `${w.timeout}s`],
    ["Active", w.active ? c.green("yes") : c.dim("no")],
    ["Description", w.description || "-"],
    ["Created", formatTime(w.createdAt)],
    ["Updated", formatTime(w.updatedAt)],
  ];
  if (counts) fields.push(["Deliveries", formatCounts(c, counts)]);
  return details(c, fields);
}

/** "3 SUCCEEDED, 1 FAILED"; "none" when there are none. */
export function formatCounts(c: Colors, counts: DeliveryCount[]): string {
  if (counts.length === 0) return "none";
  return counts.map((n) => `${n.count} ${colorStatus(c, n.status)}`).join(", ");
}

function webhookTable(c: Colors, webhooks: Webhook[]): string {
  return table(
    c,
    ["ID", "NAMESPACE", "EVENT", "METHOD", "URL", "ACTIVE", "CREATED"],
    webhooks.map((w) => [
      w.id,
      w.namespace,
      w.event,
      w.method,
      oneLine(w.url, 60),
      w.active ? c.green("yes") : c.dim("no"),
      formatTime(w.createdAt),
    ]),
  );
}
