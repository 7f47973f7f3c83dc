CREATE TYPE "public"."delivery_status" AS ENUM('pending', 'retrying', 'succeeded', 'failed', 'expired', 'cancelled');--> statement-breakpoint
CREATE TABLE "delivery_attempts" (
	"delivery_id" uuid NOT NULL,
	"attempt_number" smallint NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"duration_ms" integer NOT NULL,
	"response_code" integer,
	"response_body" text,
	"error_message" text,
	CONSTRAINT "delivery_attempts_delivery_id_attempt_number_pk" PRIMARY KEY("delivery_id","attempt_number")
);
--> statement-breakpoint
CREATE TABLE "event_records" (
	"id" uuid PRIMARY KEY DEFAULT uuidv7() NOT NULL,
	"namespace" text NOT NULL,
	"event" text NOT NULL,
	"payload" text NOT NULL,
	"ttl_seconds" integer NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"idempotency_key" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" uuid PRIMARY KEY DEFAULT uuidv7() NOT NULL,
	"webhook_id" uuid NOT NULL,
	"event_id" uuid NOT NULL,
	"status" "delivery_status" DEFAULT 'pending' NOT NULL,
	"attempt_count" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer NOT NULL,
	"response_code" integer,
	"response_body" text,
	"error_message" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_attempt_at" timestamp with time zone,
	"next_attempt_at" timestamp with time zone,
	"completed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "webhook_registrations" (
	"id" uuid PRIMARY KEY DEFAULT uuidv7() NOT NULL,
	"namespace" text NOT NULL,
	"event" text NOT NULL,
	"url" text NOT NULL,
	"method" text DEFAULT 'POST' NOT NULL,
	"headers" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"timeout" integer DEFAULT 30 NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"signing_secret" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone,
	CONSTRAINT "webhook_registrations_timeout_check" CHECK ("webhook_registrations"."timeout" between 1 and 300),
	CONSTRAINT "webhook_registrations_method_check" CHECK ("webhook_registrations"."method" in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE'))
);
--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD CONSTRAINT "delivery_attempts_delivery_id_webhook_deliveries_id_fk" FOREIGN KEY ("delivery_id") REFERENCES "public"."webhook_deliveries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_webhook_id_webhook_registrations_id_fk" FOREIGN KEY ("webhook_id") REFERENCES "public"."webhook_registrations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_event_id_event_records_id_fk" FOREIGN KEY ("event_id") REFERENCES "public"."event_records"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "event_records_idempotency_key_idx" ON "event_records" USING btree ("namespace","idempotency_key") WHERE "event_records"."idempotency_key" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "webhook_deliveries_event_webhook_idx" ON "webhook_deliveries" USING btree ("event_id","webhook_id");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_webhook_idx" ON "webhook_deliveries" USING btree ("webhook_id","id");--> statement-breakpoint
CREATE INDEX "webhook_registrations_fanout_idx" ON "webhook_registrations" USING btree ("namespace","event") WHERE "webhook_registrations"."active" and "webhook_registrations"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "webhook_registrations_list_idx" ON "webhook_registrations" USING btree ("namespace","id") WHERE "webhook_registrations"."deleted_at" is null;