import type { Command } from "commander";
import type { Cli } from "../context.js";
import { deliveryJson } from "../output/json.js";
import { colorStatus } from "../output/style.js";

export function registerDeliveryCommands(program: Command, cli: Cli): void {
  const deliveries = cli
    .command(program, "deliveries", "act on one delivery (an event's delivery to one webhook)")
    .alias("delivery")
    .addHelpText(
      "after",
      `
Examples:
  $ webhookctl deliveries resend 0190a0d4-9d3f-7a4c-b122-5e4f3a2b6c7d`,
    );

  cli
    .command(deliveries, "resend <delivery-id>", "attempt a delivery again now, whatever its state")
    .addHelpText(
      "after",
      `
A delivery that had ended (succeeded, failed, expired or cancelled) starts over:
PENDING, with a full set of attempts and its time to live counted from now. To
resend every failed delivery of a webhook, see 'webhookctl webhooks recover'.

Examples:
  $ webhookctl deliveries resend 0190a0d4-9d3f-7a4c-b122-5e4f3a2b6c7d
  $ webhookctl attempts list 0190a0d4-9d3f-7a4c-b122-5e4f3a2b6c7d   (what the new attempt got)`,
    )
    .action(
      cli.action(async (ctx, _o, [deliveryId = ""]) => {
        const { delivery } = await ctx.client.resendDelivery({ deliveryId });
        ctx.print(
          () =>
            delivery
              ? `Resent delivery ${delivery.id}: ${colorStatus(ctx.c, delivery.status)}, due now.\n` +
                `Follow it: webhookctl tail --event-id ${delivery.eventId}\n`
              : `Resent delivery ${deliveryId}.\n`,
          () => ({ delivery: delivery ? deliveryJson(delivery) : null }),
        );
      }),
    );
}
