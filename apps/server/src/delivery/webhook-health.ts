import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import type { NewEvent } from "../db/events.js";
import { clearExpiredSecrets } from "../db/signing-secrets.js";
import { disableGoneWebhook, sweepWebhookHealth, type Changed, type EventsFor } from "../db/webhook-health.js";
import { isDatabaseUnavailable } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";

/**
 * The namespace of the server's own events, which callers cannot push to:
 * operators subscribe to it with ordinary webhooks.
 */
export const OPERATOR_NAMESPACE = "httpqueue";
export const OPERATOR_EVENTS = {
  disabled: "webhook.disabled",
  failing: "webhook.failing",
  recovered: "webhook.recovered",
} as const;

export interface HealthDeps {
  db: Db;
  config: Pick<
    Config,
    "autoDisableAfterMs" | "autoDisableMinFailures" | "failingNoticeAfterMs" | "defaultTtlSeconds" | "maxAttempts"
  >;
  logger: Logger;
  metrics: Pick<Metrics, "webhookDisabled" | "deliveryOutcome">;
}

const iso = (date: Date | null) => date?.toISOString() ?? null;

/** The operator events for webhooks whose state changed: their payloads name the webhook, why, and when. */
export function operatorEvents(config: HealthDeps["config"], now = new Date()): EventsFor {
  const event = (name: string, { webhook, lastError }: Changed): NewEvent => ({
    namespace: OPERATOR_NAMESPACE,
    event: name,
    payload: JSON.stringify({
      type: name,
      webhookId: webhook.id,
      namespace: webhook.namespace,
      event: webhook.event,
      url: webhook.url,
      active: webhook.active,
      reason: webhook.disabledReason,
      lastError,
      failingSince: iso(webhook.failingSince),
      failureCount: webhook.failureCount,
      disabledAt: iso(webhook.disabledAt),
      occurredAt: now.toISOString(),
    }),
    ttlSeconds: config.defaultTtlSeconds,
    metadata: {},
    idempotencyKey: null,
    orderingKey: "",
    maxAttempts: config.maxAttempts,
  });
  return ({ disabled, failing, recovered }) => [
    ...disabled.map((c) => event(OPERATOR_EVENTS.disabled, c)),
    ...failing.map((c) => event(OPERATOR_EVENTS.failing, c)),
    ...recovered.map((c) => event(OPERATOR_EVENTS.recovered, c)),
  ];
}

/**
 * The receiver of `webhookId` answered 410 Gone: deactivate the webhook,
 * cancel its pending deliveries and tell operators. Returns whether this
 * call deactivated it (false: it was not active any more).
 */
export async function webhookGone(deps: HealthDeps, webhookId: string): Promise<boolean> {
  const changed = await disableGoneWebhook(deps.db, webhookId, operatorEvents(deps.config));
  if (!changed) return false;
  deps.metrics.webhookDisabled("gone");
  deps.metrics.deliveryOutcome("cancelled", changed.cancelled);
  deps.logger.warn({ webhookId, reason: "gone" }, "webhook deactivated: its receiver answered 410 Gone");
  return true;
}

/** What the log says of a failing webhook (not its URL: it may carry a token). */
const streak = ({ webhook, lastError }: Changed) => ({
  webhookId: webhook.id,
  failingSince: webhook.failingSince,
  failures: webhook.failureCount,
  lastError,
});

/** How often the health sweep looks: often enough for the shortest of its settings. */
export function sweepIntervalMs(config: HealthDeps["config"]): number {
  const settings = [config.failingNoticeAfterMs, config.autoDisableAfterMs].filter((ms) => ms > 0);
  return Math.max(250, Math.min(5_000, ...settings.map((ms) => ms / 4)));
}

/**
 * Every so often, deactivates webhooks that have failed for
 * AUTO_DISABLE_AFTER, and announces failing and recovered ones (see
 * db/webhook-health.ts). Every server sweeps; each change is made once. The
 * same sweep removes signing secrets whose rotation overlap has ended.
 */
export function startHealthSweep(deps: HealthDeps): { stop(): Promise<void> } {
  const { config, logger } = deps;
  let running: Promise<void> = Promise.resolve();
  const sweep = async () => {
    try {
      const { disabled, failing, recovered } = await sweepWebhookHealth(
        deps.db,
        {
          autoDisableAfterMs: config.autoDisableAfterMs,
          minFailures: config.autoDisableMinFailures,
          failingNoticeAfterMs: config.failingNoticeAfterMs,
        },
        operatorEvents(config),
      );
      for (const changed of disabled) {
        deps.metrics.webhookDisabled("failing");
        deps.metrics.deliveryOutcome("cancelled", changed.cancelled);
        logger.warn(streak(changed), "webhook deactivated: every attempt failed for AUTO_DISABLE_AFTER");
      }
      for (const changed of failing) {
        logger.warn(streak(changed), "webhook failing: every attempt has failed for FAILING_NOTICE_AFTER");
      }
      for (const { webhook } of recovered) logger.info({ webhookId: webhook.id }, "webhook recovered");
      await clearExpiredSecrets(deps.db);
    } catch (err) {
      if (isDatabaseUnavailable(err)) logger.debug({ err }, "could not check webhook health; will try again");
      else logger.warn({ err }, "could not check webhook health; will try again");
    }
  };
  const timer = setInterval(() => {
    running = running.then(sweep);
  }, sweepIntervalMs(config));
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
