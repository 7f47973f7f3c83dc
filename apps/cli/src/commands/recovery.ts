import type { Command } from "commander";
import type { Cli } from "../context.js";
import { parseTimeAgo } from "../parse.js";

interface SinceOptions {
  since: Date;
}

const SINCE_HELP =
  "from when: a duration back from now (24h: the last 24 hours; 30m, 7d) or an ISO 8601 time such as 2026-11-28T12:00:00Z (required)";

/** `webhooks recover` and `webhooks replay`: deliveries again for a time span. */
export function registerRecoveryCommands(webhooks: Command, cli: Cli): void {
  cli
    .command(webhooks, "recover <webhook-id>", "resend every FAILED or EXPIRED delivery of a webhook since a time")
    .requiredOption("--since <when>", SINCE_HELP, parseTimeAgo)
    .addHelpText(
      "after",
      `
After fixing a receiver: each failed or expired delivery created since --since
starts over (PENDING, a full set of attempts). Running it again resends only
what failed again meanwhile.

Examples:
  $ webhookctl webhooks recover 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --since 24h
  $ webhookctl webhooks recover 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --since 2026-11-28T09:00:00Z --json`,
    )
    .action(
      cli.action<SinceOptions>(async (ctx, o, [webhookId = ""]) => {
        const { resent } = await ctx.client.recoverWebhook({ webhookId, since: o.since });
        ctx.print(
          () =>
            `Resent ${resent} failed or expired ${resent === 1 ? "delivery" : "deliveries"} of webhook ${webhookId} created since ${o.since.toISOString()}.\n`,
          () => ({ webhookId, since: o.since.toISOString(), resent }),
        );
      }),
    );

  cli
    .command(webhooks, "replay <webhook-id>", "deliver to a webhook the events since a time that it missed")
    .requiredOption("--since <when>", SINCE_HELP, parseTimeAgo)
    .addHelpText(
      "after",
      `
Queues a delivery for each event of the webhook's namespace/event pushed since
--since that the webhook has none of: it was inactive then, or registered
later. Running it again queues nothing twice.

Examples:
  $ webhookctl webhooks replay 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --since 24h
  $ webhookctl webhooks replay 0190a0d4-7b1c-7e2a-9f00-3c2d1e0f4a5b --since 2026-11-28 --json`,
    )
    .action(
      cli.action<SinceOptions>(async (ctx, o, [webhookId = ""]) => {
        const { queued } = await ctx.client.replayMissed({ webhookId, since: o.since });
        ctx.print(
          () =>
            `Queued ${queued} missed ${queued === 1 ? "delivery" : "deliveries"} to webhook ${webhookId}, for events since ${o.since.toISOString()}.\n`,
          () => ({ webhookId, since: o.since.toISOString(), queued }),
        );
      }),
    );
}
