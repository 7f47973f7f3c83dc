CREATE TABLE "webhook_runners" (
	"webhook_id" uuid PRIMARY KEY NOT NULL,
	"owner" text NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "webhook_runners" ADD CONSTRAINT "webhook_runners_webhook_id_webhook_registrations_id_fk" FOREIGN KEY ("webhook_id") REFERENCES "public"."webhook_registrations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries" USING btree ("webhook_id","next_attempt_at") WHERE "webhook_deliveries"."status" in ('pending', 'retrying');--> statement-breakpoint
-- Deliveries are now due by next_attempt_at while pending too: those stored
-- before it was set at creation are due since then.
UPDATE "webhook_deliveries" SET "next_attempt_at" = "created_at" WHERE "status" = 'pending' AND "next_attempt_at" IS NULL;
