ALTER TABLE "event_records" ADD COLUMN "payload_removed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "signature_scheme" text DEFAULT 'hmac-sha256' NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "previous_signing_secret" text;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "previous_secret_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD CONSTRAINT "webhook_registrations_signature_scheme_check" CHECK ("webhook_registrations"."signature_scheme" in ('hmac-sha256', 'ed25519'));--> statement-breakpoint
-- An unregistered webhook signs nothing more: its secrets go at once (the row
-- stays for its deliveries' history until retention removes it).
UPDATE "webhook_registrations" SET "signing_secret" = '', "previous_signing_secret" = NULL, "previous_secret_expires_at" = NULL
  WHERE "deleted_at" IS NOT NULL AND ("signing_secret" <> '' OR "previous_signing_secret" IS NOT NULL);
