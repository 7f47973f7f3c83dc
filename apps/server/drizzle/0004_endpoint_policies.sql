ALTER TABLE "event_records" ADD COLUMN "ordering_key" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD COLUMN "ordering_key" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "retry_schedule" integer[];--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "max_attempts" integer;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "rate_limit_per_second" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "max_in_flight" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "ordering" text DEFAULT 'none' NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "disabled_reason" text;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "disabled_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "failing_since" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "failure_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "failing_noticed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "paused_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "pace" double precision;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "next_send_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_ordering_idx" ON "webhook_deliveries" USING btree ("webhook_id","ordering_key","event_id") WHERE "webhook_deliveries"."status" in ('pending', 'retrying');--> statement-breakpoint
CREATE INDEX "webhook_registrations_failing_idx" ON "webhook_registrations" USING btree ("id") WHERE "webhook_registrations"."failing_since" is not null or "webhook_registrations"."failing_noticed_at" is not null;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD CONSTRAINT "webhook_registrations_ordering_check" CHECK ("webhook_registrations"."ordering" in ('none', 'by_key'));--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD CONSTRAINT "webhook_registrations_disabled_reason_check" CHECK ("webhook_registrations"."disabled_reason" in ('manual', 'gone', 'failing'));--> statement-breakpoint
-- The first delivery (in push order) of each ordering key among a webhook's
-- deliveries that have not ended: what an ordered webhook may attempt. A skip
-- scan of webhook_deliveries_ordering_idx (one descent per key, then one for
-- its first delivery): its cost grows with the number of keys, not with the
-- backlog behind them.
CREATE FUNCTION "httpqueue_key_heads"("webhook" uuid) RETURNS SETOF "webhook_deliveries"
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  WITH RECURSIVE k(ordering_key) AS (
    (SELECT d.ordering_key FROM webhook_deliveries d
      WHERE d.webhook_id = webhook AND d.status IN ('pending', 'retrying')
      ORDER BY d.ordering_key LIMIT 1)
    UNION ALL
    SELECT (SELECT d.ordering_key FROM webhook_deliveries d
        WHERE d.webhook_id = webhook AND d.status IN ('pending', 'retrying') AND d.ordering_key > k.ordering_key
        ORDER BY d.ordering_key LIMIT 1)
    FROM k WHERE k.ordering_key IS NOT NULL
  )
  SELECT h.* FROM k CROSS JOIN LATERAL (
    SELECT * FROM webhook_deliveries d
    WHERE d.webhook_id = webhook AND d.ordering_key = k.ordering_key AND d.status IN ('pending', 'retrying')
    ORDER BY d.event_id LIMIT 1
  ) h
  WHERE k.ordering_key IS NOT NULL
$$;
