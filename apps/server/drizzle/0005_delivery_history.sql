CREATE TABLE "delivery_watchers" (
	"server" text PRIMARY KEY NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD COLUMN "request_method" text;--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD COLUMN "request_url" text;--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD COLUMN "request_headers" jsonb;--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD COLUMN "response_headers" jsonb;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD COLUMN "resends" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "event_records_namespace_idx" ON "event_records" USING btree ("namespace","id");--> statement-breakpoint
-- WatchDeliveries: while a server has a watcher (an unexpired row in
-- delivery_watchers), every statement that creates deliveries, changes their
-- status or attempt count, or resends them sends the changes on the channel
-- httpqueue_deliveries: {"t": the transaction's start in ms, "r": [[id,
-- webhook_id, event_id, status, attempt_count, attempted, next_attempt_at in
-- ms, error], ...]}, in chunks of at most about 6,000 bytes of rows (a
-- notification holds 8,000; a row, its error cut to 200 characters, stays
-- under 1,500 even escaped). Without a watcher it costs the transition
-- tables and one lookup of a tiny table per statement; PostgreSQL commits
-- transactions that NOTIFY one at a time, so only then do they pay more.
CREATE FUNCTION "httpqueue_delivery_changes"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM public.delivery_watchers WHERE expires_at > now()) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM pg_notify('httpqueue_deliveries', json_build_object(
      't', floor(extract(epoch from now()) * 1000), 'r', json_agg(c.r ORDER BY c.ord))::text)
    FROM (
      SELECT r, ord, sum(octet_length(r::text)) OVER (ORDER BY ord) / 6000 AS chunk
      FROM (
        SELECT json_build_array(n.id, n.webhook_id, n.event_id, n.status, n.attempt_count, false,
          floor(extract(epoch from n.next_attempt_at) * 1000), null) AS r,
          row_number() OVER () AS ord
        FROM new_rows n
      ) rows
    ) c
    GROUP BY c.chunk;
  ELSE
    PERFORM pg_notify('httpqueue_deliveries', json_build_object(
      't', floor(extract(epoch from now()) * 1000), 'r', json_agg(c.r ORDER BY c.ord))::text)
    FROM (
      SELECT r, ord, sum(octet_length(r::text)) OVER (ORDER BY ord) / 6000 AS chunk
      FROM (
        SELECT json_build_array(n.id, n.webhook_id, n.event_id, n.status, n.attempt_count,
          n.attempt_count > o.attempt_count,
          floor(extract(epoch from n.next_attempt_at) * 1000),
          CASE WHEN n.attempt_count = o.attempt_count AND n.status IN ('failed', 'expired', 'cancelled')
            THEN left(n.error_message, 200) END) AS r,
          row_number() OVER () AS ord
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status <> o.status OR n.attempt_count <> o.attempt_count OR n.resends <> o.resends
      ) rows
    ) c
    GROUP BY c.chunk;
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "webhook_deliveries_created" AFTER INSERT ON "webhook_deliveries"
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION "httpqueue_delivery_changes"();
--> statement-breakpoint
CREATE TRIGGER "webhook_deliveries_changed" AFTER UPDATE ON "webhook_deliveries"
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION "httpqueue_delivery_changes"();
