import { Option, type Command } from "commander";
import {
  DisabledReason,
  Ordering,
  SignatureScheme,
  type DeliveryCount,
  type RetryPolicy,
  type UpdateWebhookRequest,
  type Webhook,
} from "@httpqueue/sdk";
import { UsageError } from "../errors.js";
import { countJson, webhookJson } from "../output/json.js";
import { compactJson, formatCounts, formatTime, oneLine, type Colors } from "../output/style.js";
import { details, table } from "../output/table.js";
import {
  collectHeader,
  parseCount,
  parseFilter,
  parsePositiveInt,
  parseRetrySchedule,
  parseSeconds,
  parseSignatureScheme,
} from "../parse.js";
import type { Cli } from "../context.js";
import { registerRecoveryCommands } from "./recovery.js";
import { keyTitle, overlapNote, registerSecretCommands, schemeName } from "./secrets.js";

interface RegisterOptions {
  namespace: string;
  event: string;
  url: string;
  method?: string;
  header?: Record<string, string>;
  requestTimeout?: number;
  inactive?: boolean;
  description?: string;
  retrySchedule?: number[];
  maxAttempts?: number;
  rateLimit?: number;
  maxInFlight?: number;
  ordered?: boolean;
  filter?: string;
  signatureScheme?: SignatureScheme;
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
  requestTimeout?: number;
  active?: boolean;
  inactive?: boolean;
  description?: string;
  retrySchedule?: number[];
  maxAttempts?: number;
  defaultRetries?: boolean;
  rateLimit?: number;
  maxInFlight?: number;
  ordered?: boolean;
  unordered?: boolean;
  filter?: string;
  clearFilter?: boolean;
  signatureScheme?: SignatureScheme;
}

const METHODS = "GET, POST, PUT, PATCH or DELETE";

// The delivery policy's options, the same for register and update.
const RETRY_SCHEDULE = {
  flags: "--retry-schedule <delays>",
  help: "delays before the 2nd, 3rd, ... attempt, comma-separated, e.g. 1s,10s,1m (each 1s to 24h; the last repeats; default: the server's)",
};
const MAX_ATTEMPTS = { flags: "--max-attempts <n>", help: "attempts per delivery, 1 to 50 (default: the server's)" };
const RATE_LIMIT = {
  flags: "--rate-limit <per-second>",
  help: "most requests a second to this webhook, across all servers (default: no limit)",
};
const MAX_IN_FLIGHT = {
  flags: "--max-in-flight <n>",
  help: "most requests in flight at once, per server, 1 to 1000 (0: the server's default)",
};
const ORDERED = {
  flags: "--ordered",
  help: "deliver events with the same ordering key one after another, in push order (see events push --ordering-key); events pushed without a key share one order, so one retrying holds back all of them",
};

const SIGNATURE_SCHEME = {
  flags: "--signature-scheme <scheme>",
  help: "how deliveries are signed: hmac-sha256 (a secret shared with the receiver, whsec_...) or ed25519 (the receiver holds only a public key, whpk_...)",
};

const FILTER = {
  flags: "--filter <json>",
  help: 'deliver only events whose payload contains this JSON object, given as text or @file: nested objects match as subsets, an array value means any of its elements, e.g. \'{"plan":"pro","country":["DE","FR"]}\'; at most 4096 bytes',
};

export function registerWebhookCommands(program: Command, cli: Cli): void {
  const webhooks = cli
    .command(program, "webhooks", "register, list, inspect, change and remove webhooks")
    .alias("webhook")
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl webhooks register --namespace user --event signup --url https://example.com/hooks/signup
  $ webhookctl webhooks register --namespace shop --event 'order.*' --url https://example.com/hooks/orders \\
      --filter '{"plan":"pro","country":["DE","FR"]}'
  $ webhookctl webhooks list --namespace user`,
    );

  cli
    .command(webhooks, "register", "register a webhook for a namespace/event pair and print its signing secret")
    .requiredOption("--namespace <name>", "namespace of the events, e.g. user (required)")
    .requiredOption(
      "--event <name>",
      "event name, e.g. signup; or a pattern: '*' (every event of the namespace) or 'order.*' (every event whose name starts with order.) (required)",
    )
    .requiredOption("--url <url>", "absolute http or https URL that receives the deliveries (required)")
    .option("--method <method>", `HTTP method: ${METHODS} (default: POST)`)
    .option("--header <name: value>", "custom header sent with every delivery (repeatable)", collectHeader)
    .option(
      "--request-timeout <seconds>",
      "HTTP timeout of each delivery: 1 to 300 seconds, bare or as 10s, 2m (default: 30)",
      parseSeconds,
    )
    .option("--inactive", "register it inactive: it receives nothing until activated")
    .option("--description <text>", "free text for people")
    .option(RETRY_SCHEDULE.flags, RETRY_SCHEDULE.help, parseRetrySchedule)
    .option(MAX_ATTEMPTS.flags, MAX_ATTEMPTS.help, parsePositiveInt)
    .option(RATE_LIMIT.flags, RATE_LIMIT.help, parseCount)
    .option(MAX_IN_FLIGHT.flags, MAX_IN_FLIGHT.help, parseCount)
    .option(ORDERED.flags, ORDERED.help)
    .option(FILTER.flags, `${FILTER.help} (default: every payload)`, parseFilter)
    .option(SIGNATURE_SCHEME.flags, `${SIGNATURE_SCHEME.help} (default: hmac-sha256)`, parseSignatureScheme)
    .addHelpText(
      "after",
      `
Prints the signing secret (whsec_...), or for --signature-scheme ed25519 the
public key (whpk_...): store it with the receiver, which checks each
delivery's webhook-signature with it (see verifyWebhook in @httpqueue/sdk, or
any Standard Webhooks library). 'webhooks secret' shows it again.

Examples:
  $ webhookctl webhooks register --namespace user --event signup \\
      --url https://example.com/hooks/signup --header 'Authorization: Bearer abc' --request-timeout 10
  $ webhookctl webhooks register --namespace user --event signup --url https://example.com/h --json | jq -r .signingSecret
  $ webhookctl webhooks register --namespace order --event updated --url https://example.com/orders \\
      --retry-schedule 1s,10s,1m --max-attempts 5 --rate-limit 50 --max-in-flight 8 --ordered
  $ webhookctl webhooks register --namespace shop --event 'order.*' --url https://example.com/orders \\
      --filter '{"plan":"pro","country":["DE","FR"]}'
  $ webhookctl webhooks register --namespace shop --event '*' --url https://example.com/all --filter @filter.json
  $ webhookctl webhooks register --namespace user --event signup --url https://example.com/h --signature-scheme ed25519`,
    )
    .action(
      cli.action<RegisterOptions>(async (ctx, o) => {
        const res = await ctx.client.registerWebhook({
          namespace: o.namespace,
          event: o.event,
          url: o.url,
          method: o.method,
          headers: o.header,
          timeout: o.requestTimeout,
          active: o.inactive ? false : undefined,
          description: o.description,
          retryPolicy:
            o.retrySchedule || o.maxAttempts
              ? { scheduleSeconds: o.retrySchedule ?? [], maxAttempts: o.maxAttempts ?? 0 }
              : undefined,
          rateLimitPerSecond: o.rateLimit,
          maxInFlight: o.maxInFlight,
          ordering: o.ordered ? Ordering.ORDERING_BY_KEY : undefined,
          filter: o.filter,
          signatureScheme: o.signatureScheme,
        });
        const scheme = res.webhook?.signatureScheme ?? SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256;
        ctx.print(
          () =>
            `Registered webhook ${res.webhookId}\n\n${webhookDetails(ctx.c, res.webhook)}\n` +
            `${ctx.c.bold(keyTitle(scheme))} (store it with the receiver)\n  ${res.signingSecret}\n`,
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
    .option("--request-timeout <seconds>", "new HTTP timeout of each delivery, 1 to 300 seconds", parseSeconds)
    .option("--active", "activate it")
    .addOption(new Option("--inactive", "deactivate it: pending deliveries are cancelled").conflicts("active"))
    .option("--description <text>", "new description (empty to clear)")
    .option(RETRY_SCHEDULE.flags, RETRY_SCHEDULE.help, parseRetrySchedule)
    .option(MAX_ATTEMPTS.flags, `${MAX_ATTEMPTS.help}; applies to deliveries not yet ended too`, parsePositiveInt)
    .addOption(
      new Option("--default-retries", "go back to the server's retry schedule and attempts").conflicts([
        "retrySchedule",
        "maxAttempts",
      ]),
    )
    .option(RATE_LIMIT.flags, `${RATE_LIMIT.help}; 0 removes it`, parseCount)
    .option(MAX_IN_FLIGHT.flags, MAX_IN_FLIGHT.help, parseCount)
    .option(ORDERED.flags, ORDERED.help)
    .addOption(new Option("--unordered", "deliver without keeping order").conflicts("ordered"))
    .option(FILTER.flags, `replace the filter: ${FILTER.help}`, parseFilter)
    .addOption(new Option("--clear-filter", "remove the filter: every payload is delivered").conflicts("filter"))
    .option(
      SIGNATURE_SCHEME.flags,
      `${SIGNATURE_SCHEME.help}; a new scheme gets a new key, printed once, and the old secret signs too for 24h`,
      parseSignatureScheme,
    )
    .addHelpText(
      "after",
      `
Activating a webhook that was deactivated (by hand, or by the server: its
receiver answered 410 Gone, or failed for AUTO_DISABLE_AFTER) starts it clean.
Changing --signature-scheme rotates in a key of the new scheme: for 24 hours
deliveries carry a signature of each kind (see 'webhooks rotate-secret').

Examples:
  $ webhookctl webhooks update 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --url https://example.com/v2/signup --request-timeout 15
  $ webhookctl webhooks update 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --inactive
  $ webhookctl webhooks update 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --max-attempts 3 --rate-limit 10
  $ webhookctl webhooks update 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --filter '{"plan":"pro","country":["DE","FR"]}'
  $ webhookctl webhooks update 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --clear-filter
  $ webhookctl webhooks update 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --signature-scheme ed25519`,
    )
    .action(
      cli.action<UpdateOptions>(async (ctx, o, [webhookId = ""]) => {
        const request: Partial<UpdateWebhookRequest> = { webhookId };
        if (o.url !== undefined) request.url = o.url;
        if (o.method !== undefined) request.method = o.method;
        if (o.header !== undefined) request.headers = { values: o.header };
        if (o.clearHeaders) request.headers = { values: {} };
        if (o.requestTimeout !== undefined) request.timeout = o.requestTimeout;
        if (o.active) request.active = true;
        if (o.inactive) request.active = false;
        if (o.description !== undefined) request.description = o.description;
        if (o.defaultRetries) request.retryPolicy = { scheduleSeconds: [], maxAttempts: 0 };
        if (o.retrySchedule !== undefined || o.maxAttempts !== undefined) {
          // The policy is replaced whole: keep what was not given.
          const { webhook: current } = await ctx.client.getWebhookStatus({ webhookId, pageSize: 1 });
          request.retryPolicy = {
            scheduleSeconds: o.retrySchedule ?? current?.retryPolicy?.scheduleSeconds ?? [],
            maxAttempts: o.maxAttempts ?? current?.retryPolicy?.maxAttempts ?? 0,
          };
        }
        if (o.rateLimit !== undefined) request.rateLimitPerSecond = o.rateLimit;
        if (o.maxInFlight !== undefined) request.maxInFlight = o.maxInFlight;
        if (o.ordered) request.ordering = Ordering.ORDERING_BY_KEY;
        if (o.unordered) request.ordering = Ordering.ORDERING_NONE;
        if (o.filter !== undefined) request.filter = o.filter;
        if (o.clearFilter) request.filter = "";
        if (o.signatureScheme !== undefined) request.signatureScheme = o.signatureScheme;
        if (Object.keys(request).length === 1) {
          throw new UsageError(
            "nothing to update: give at least one of --url, --method, --header, --clear-headers, --request-timeout, --active, --inactive, --description, --retry-schedule, --max-attempts, --default-retries, --rate-limit, --max-in-flight, --ordered, --unordered, --filter, --clear-filter, --signature-scheme",
          );
        }
        const { webhook, warnings, signingSecret, previousSecretExpiresAt } = await ctx.client.updateWebhook(request);
        const newKey = () =>
          signingSecret === "" || !webhook
            ? ""
            : `${ctx.c.bold(`New ${keyTitle(webhook.signatureScheme).toLowerCase()}`)} (store it with the receiver)\n  ${signingSecret}\n\n` +
              overlapNote(ctx.c, previousSecretExpiresAt);
        ctx.print(
          () => `Updated webhook ${webhookId}\n\n${webhookDetails(ctx.c, webhook)}${newKey()}`,
          () => ({
            webhook: webhook && webhookJson(webhook),
            warnings,
            signingSecret,
            previousSecretExpiresAt: previousSecretExpiresAt?.toISOString() ?? null,
          }),
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

  registerRecoveryCommands(webhooks, cli);
  registerSecretCommands(webhooks, cli);
}

export function webhookDetails(c: Colors, w: Webhook | undefined, counts?: DeliveryCount[]): string {
  if (!w) return "";
  const headers = Object.entries(w.headers).map(([name, value]) => `${name}: ${value}`);
  const fields: [string, string][] = [
    ["ID", w.id],
    ["Namespace", w.namespace],
    ["Event", w.event],
    ["Filter", w.filter ? compactJson(w.filter) : "none"],
    ["URL", w.url],
    ["Method", w.method],
    ["Headers", headers.length > 0 ? headers.join("\n") : "-"],
    ["Timeout", `${w.timeout}s`],
    ["Active", w.active ? c.green("yes") : c.dim("no")],
    ["Description", w.description || "-"],
    ["Retries", formatRetryPolicy(w.retryPolicy)],
    ["Rate limit", w.rateLimitPerSecond > 0 ? `${w.rateLimitPerSecond}/s` : "none"],
    ["In flight", w.maxInFlight > 0 ? `at most ${w.maxInFlight} per server` : "server default"],
    ["Ordering", w.ordering === Ordering.ORDERING_BY_KEY ? "by ordering key" : "none"],
    ["Signing", schemeName(w.signatureScheme)],
  ];
  if (w.previousSecretExpiresAt) {
    fields.push(["Rotation", `the previous secret signs too until ${formatTime(w.previousSecretExpiresAt)}`]);
  }
  if (!w.active) fields.push(["Disabled", formatDisabled(w)]);
  if (w.failingSince) fields.push(["Failing since", c.red(formatTime(w.failingSince))]);
  if (w.pacePerSecond > 0) {
    fields.push(["Pace", c.yellow(`slowed to ${formatRate(w.pacePerSecond)}/s (the receiver was overloaded)`)]);
  }
  if (w.pausedUntil) fields.push(["Paused until", c.yellow(`${formatTime(w.pausedUntil)} (Retry-After)`)]);
  fields.push(["Created", formatTime(w.createdAt)], ["Updated", formatTime(w.updatedAt)]);
  if (counts) fields.push(["Deliveries", formatCounts(c, counts)]);
  return details(c, fields);
}

/** "1s, 10s, 1m (the last repeats); 5 attempts", with "server default" for what is not set. */
function formatRetryPolicy(policy: RetryPolicy | undefined): string {
  const schedule = policy?.scheduleSeconds ?? [];
  const delays =
    schedule.length === 0 ? "server's schedule" : `${schedule.map(formatSeconds).join(", ")} (the last repeats)`;
  const attempts = policy?.maxAttempts ? `${policy.maxAttempts} attempts` : "server's attempts";
  return `${delays}; ${attempts}`;
}

function formatSeconds(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

const formatRate = (rate: number) => (Number.isInteger(rate) ? String(rate) : rate.toFixed(1));

const DISABLED: Record<number, string> = {
  [DisabledReason.DISABLED_REASON_MANUAL]: "by hand",
  [DisabledReason.DISABLED_REASON_GONE]: "its receiver answered 410 Gone",
  [DisabledReason.DISABLED_REASON_FAILING]: "every attempt failed for too long",
};

function formatDisabled(w: Webhook): string {
  const why = DISABLED[w.disabledReason] ?? "registered inactive";
  return w.disabledAt ? `${why}, ${formatTime(w.disabledAt)}` : why;
}

function webhookTable(c: Colors, webhooks: Webhook[]): string {
  return table(
    c,
    ["ID", "NAMESPACE", "EVENT", "FILTER", "METHOD", "URL", "ACTIVE", "CREATED"],
    webhooks.map((w) => [
      w.id,
      w.namespace,
      w.event,
      w.filter ? oneLine(compactJson(w.filter), 30) : "-",
      w.method,
      oneLine(w.url, 60),
      w.active ? c.green("yes") : c.dim("no"),
      formatTime(w.createdAt),
    ]),
  );
}
