import { Option, type Command } from "commander";
import type { Attempt } from "@httpqueue/sdk";
import type { Cli } from "../context.js";
import { attemptJson } from "../output/json.js";
import { colorCode, formatDuration, formatTime, oneLine, type Colors } from "../output/style.js";
import { table } from "../output/table.js";
import { parsePositiveInt } from "../parse.js";

interface ListOptions {
  limit?: number;
  pageToken?: string;
  all?: boolean;
}

export function registerAttemptCommands(program: Command, cli: Cli): void {
  const attempts = cli
    .command(program, "attempts", "show the HTTP requests made for a delivery, and what came back")
    .alias("attempt")
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl attempts list 0190a0d4-9d3f-7a4c-b122-5e4f3a2b6c7d`,
    );

  cli
    .command(attempts, "list <delivery-id>", "list a delivery's attempts, newest first")
    .alias("ls")
    .addOption(new Option("--limit <n>", "attempts per page, 1 to 100 (default: 20)").argParser(parsePositiveInt))
    .addOption(new Option("--page-token <token>", "continue after a previous page (its nextPageToken)"))
    .addOption(new Option("--all", "every page, not just one").conflicts("pageToken"))
    .addHelpText(
      "after",
      `
Delivery ids come from 'webhookctl status --event <event-id>' or 'webhookctl tail'.
With --json, each attempt has the request as sent (method, URL, headers) and
the response (code, headers, the start of the body).

Examples:
  $ webhookctl attempts list 0190a0d4-9d3f-7a4c-b122-5e4f3a2b6c7d
  $ webhookctl attempts list 0190a0d4-9d3f-7a4c-b122-5e4f3a2b6c7d --all --json | jq '.attempts[] | {attempt, responseCode, responseBody}'`,
    )
    .action(
      cli.action<ListOptions>(async (ctx, o, [deliveryId = ""]) => {
        let attempts: Attempt[] = [];
        let nextPageToken = "";
        if (o.all) {
          for await (const a of ctx.client.listAttemptsAsync({ deliveryId, pageSize: o.limit })) attempts.push(a);
        } else {
          ({ attempts, nextPageToken } = await ctx.client.listAttempts({
            deliveryId,
            pageSize: o.limit,
            pageToken: o.pageToken,
          }));
        }
        ctx.print(
          () => (attempts.length === 0 ? "No attempts yet.\n" : attemptTable(ctx.c, attempts)),
          () => ({ attempts: attempts.map(attemptJson), nextPageToken }),
        );
        if (nextPageToken && !ctx.globals.json) {
          ctx.note(`More attempts: add --page-token ${nextPageToken}, or --all for every page.`);
        }
      }),
    );
}

function attemptTable(c: Colors, attempts: Attempt[]): string {
  return table(
    c,
    ["ATTEMPT", "STARTED", "DURATION", "REQUEST", "HTTP", "RESPONSE / ERROR"],
    attempts.map((a) => [
      String(a.attempt),
      formatTime(a.startedAt),
      formatDuration(a.durationMs),
      `${a.requestMethod} ${oneLine(a.requestUrl, 50)}`,
      colorCode(c, a.responseCode),
      oneLine(a.errorMessage || a.responseBody, 60) || "-",
    ]),
  );
}
