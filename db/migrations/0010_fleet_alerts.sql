CREATE TABLE "fleet_alert_checks" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"claimed_until" timestamp with time zone NOT NULL,
	"holder" text NOT NULL,
	CONSTRAINT "fleet_alert_checks_single_row" CHECK ("fleet_alert_checks"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "fleet_alerts" (
	"identity" text NOT NULL,
	"alert" text NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"resolved_at" timestamp with time zone,
	"fired_sent_at" timestamp with time zone,
	"resolved_sent_at" timestamp with time zone,
	CONSTRAINT "fleet_alerts_identity_alert_started_at_pk" PRIMARY KEY("identity","alert","started_at"),
	CONSTRAINT "fleet_alerts_alert" CHECK ("fleet_alerts"."alert" in ('missedRenewal', 'critical'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "fleet_alerts_open_idx" ON "fleet_alerts" USING btree ("identity","alert") WHERE "fleet_alerts"."resolved_at" is null;--> statement-breakpoint
CREATE INDEX "fleet_alerts_pending_idx" ON "fleet_alerts" USING btree ("started_at") WHERE ("fleet_alerts"."resolved_at" is null and "fleet_alerts"."fired_sent_at" is null) or ("fleet_alerts"."resolved_at" is not null and "fleet_alerts"."fired_sent_at" is not null and "fleet_alerts"."resolved_sent_at" is null);