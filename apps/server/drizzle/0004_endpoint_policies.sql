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
ALTER TABLE "webhook_registrations" ADD COLUMN "recovered_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "paused_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "pace" double precision;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "next_send_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_ordering_idx" ON "webhook_deliveries" USING btree ("webhook_id","ordering_key","event_id") WHERE "webhook_deliveries"."status" in ('pending', 'retrying');--> statement-breakpoint
CREATE INDEX "webhook_registrations_failing_idx" ON "webhook_registrations" USING btree ("id") WHERE "webhook_registrations"."failing_since" is not null or "webhook_registrations"."failing_noticed_at" is not null or "webhook_registrations"."recovered_at" is not null;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD CONSTRAINT "webhook_registrations_ordering_check" CHECK ("webhook_registrations"."ordering" in ('none', 'by_key'));--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD CONSTRAINT "webhook_registrations_disabled_reason_check" CHECK ("webhook_registrations"."disabled_reason" in ('manual', 'gone', 'failing'));--> statement-breakpoint
-- The first delivery (in push order) of each ordering key among the
-- deliveries of a webhook that keeps order which have not ended: what it may
-- attempt (nothing for a webhook that does not keep order). A skip scan of
-- webhook_deliveries_ordering_idx, one descent per key: its cost grows with
-- the number of keys, not with the backlog behind them. PL/pgSQL, so that its
-- statements are planned once per session, not at every call.
CREATE FUNCTION "httpqueue_key_heads"("webhook" uuid) RETURNS SETOF "webhook_deliveries"
LANGUAGE plpgsql STABLE AS $$
DECLARE
  k text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_registrations w WHERE w.id = webhook AND w.ordering = 'by_key') THEN
    RETURN;
  END IF;
  SELECT d.ordering_key INTO k FROM webhook_deliveries d
    WHERE d.webhook_id = webhook AND d.status IN ('pending', 'retrying')
    ORDER BY d.ordering_key LIMIT 1;
  WHILE FOUND LOOP
    RETURN QUERY SELECT * FROM webhook_deliveries d
      WHERE d.webhook_id = webhook AND d.ordering_key = k AND d.status IN ('pending', 'retrying')
      ORDER BY d.event_id LIMIT 1;
    SELECT d.ordering_key INTO k FROM webhook_deliveries d
      WHERE d.webhook_id = webhook AND d.status IN ('pending', 'retrying') AND d.ordering_key > k
      ORDER BY d.ordering_key LIMIT 1;
  END LOOP;
END
$$;
