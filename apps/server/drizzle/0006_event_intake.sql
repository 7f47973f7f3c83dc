CREATE TABLE "push_settings" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"default_ttl_seconds" integer NOT NULL,
	"max_ttl_seconds" integer NOT NULL,
	"max_payload_bytes" integer NOT NULL,
	"max_attempts" integer NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "push_settings_one_row" CHECK ("push_settings"."id" = 1)
);
--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD COLUMN "filter" jsonb;--> statement-breakpoint
CREATE INDEX "webhook_registrations_patterns_idx" ON "webhook_registrations" USING btree ("namespace") WHERE "webhook_registrations"."active" and "webhook_registrations"."deleted_at" is null and ("webhook_registrations"."event" = '*' or "webhook_registrations"."event" like '%.*');--> statement-breakpoint
ALTER TABLE "webhook_registrations" ADD CONSTRAINT "webhook_registrations_filter_check" CHECK ("webhook_registrations"."filter" is null or jsonb_typeof("webhook_registrations"."filter") = 'object');--> statement-breakpoint
-- A new UUIDv7, bound when the migration runs to the uuidv7() there is
-- (PostgreSQL 18's, or the one migration 0000 defines): the functions below
-- run with search_path = pg_catalog only.
CREATE FUNCTION "httpqueue_new_id"() RETURNS uuid
LANGUAGE sql VOLATILE
BEGIN ATOMIC
  SELECT uuidv7();
END;
--> statement-breakpoint
-- Whether a payload holds what a webhook's filter asks: every key of the
-- filter, with a value the payload contains (jsonb containment, so nested
-- objects match as subsets), or for an array value, any one of its elements.
CREATE FUNCTION "httpqueue_payload_matches"(payload jsonb, filter jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(bool_and(
    CASE WHEN jsonb_typeof(f.value) = 'array'
      THEN EXISTS (SELECT 1 FROM jsonb_array_elements(f.value) a WHERE payload @> jsonb_build_object(f.key, a.value))
      ELSE payload @> jsonb_build_object(f.key, f.value)
    END), true)
  FROM jsonb_each(filter) f
$$;
--> statement-breakpoint
-- Whether a webhook (its event pattern and filter) receives an event: the
-- same name, "*", or "prefix.*" for names that start with "prefix.", and a
-- payload its filter matches.
CREATE FUNCTION "httpqueue_event_matches"(pattern text, filter jsonb, event text, payload text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT (pattern = event OR pattern = '*' OR (right(pattern, 2) = '.*' AND starts_with(event, left(pattern, -1))))
    AND (filter IS NULL OR public.httpqueue_payload_matches(payload::jsonb, filter))
$$;
--> statement-breakpoint
-- The active webhooks an event goes to: those of its exact name (the fan-out
-- index), then the patterns of its namespace (their own small index), each
-- with its filter. A plain SQL function: PostgreSQL inlines it into the
-- statements that call it. Every object is named with its schema: the
-- functions that call it run with search_path = pg_catalog only.
CREATE FUNCTION "httpqueue_receiving_webhooks"(ns text, ev text, payload text)
RETURNS TABLE (id uuid, max_attempts integer)
LANGUAGE sql STABLE AS $$
  SELECT w.id, w.max_attempts FROM public.webhook_registrations w
  WHERE w.namespace = ns AND w.event = ev AND w.active AND w.deleted_at IS NULL
    AND (w.filter IS NULL OR public.httpqueue_payload_matches(payload::jsonb, w.filter))
  UNION ALL
  SELECT w.id, w.max_attempts FROM public.webhook_registrations w
  WHERE w.namespace = ns AND w.active AND w.deleted_at IS NULL AND (w.event = '*' OR w.event LIKE '%.*')
    AND public.httpqueue_event_matches(w.event, w.filter, ev, payload)
$$;
--> statement-breakpoint
-- What a push does, for PushEvent (one call for many pushes) and for
-- httpqueue.push_event alike: stores the events (a repeated idempotency key
-- of the namespace stores nothing: its id comes back null), creates one
-- delivery per receiving webhook and queues a job per webhook that got
-- some; an event with more than inline_fanout webhooks, or past
-- statement_deliveries deliveries in all, gets a fan-out job instead. Each
-- input row: ord, namespace, event, payload (JSON text), ttl_seconds,
-- metadata, idempotency_key, ordering_key, max_attempts (the server's; a
-- webhook's own wins). Returns each ord with its event's id.
CREATE FUNCTION "httpqueue_store_events"(events json, inline_fanout integer DEFAULT 100, statement_deliveries integer DEFAULT 5000)
RETURNS TABLE (ord integer, id uuid)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH inp AS MATERIALIZED (
    SELECT x.ord, public.httpqueue_new_id() AS id, x.namespace, x.event, x.payload, x.ttl_seconds, x.metadata, x.idempotency_key,
      x.ordering_key, x.max_attempts
    FROM json_to_recordset(events) AS x(
      ord int, namespace text, event text, payload text, ttl_seconds int, metadata jsonb, idempotency_key text,
      ordering_key text, max_attempts int
    )
  ), inserted AS (
    INSERT INTO public.event_records AS er
      (id, namespace, event, payload, ttl_seconds, metadata, idempotency_key, ordering_key, expires_at)
    SELECT i.id, i.namespace, i.event, i.payload, i.ttl_seconds, i.metadata, i.idempotency_key, i.ordering_key,
      now() + make_interval(secs => i.ttl_seconds)
    FROM inp i
    ORDER BY i.ord
    ON CONFLICT (namespace, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING er.id, er.namespace, er.event, er.payload
  ), matched AS (
    -- One more than the inline limit tells which events are over it.
    SELECT ins.id AS event_id, w.id AS webhook_id, w.max_attempts
    FROM inserted ins
    CROSS JOIN LATERAL (
      SELECT r.id, r.max_attempts FROM public.httpqueue_receiving_webhooks(ins.namespace, ins.event, ins.payload) r
      LIMIT inline_fanout + 1
    ) w
  ), counted AS (
    -- Each event's webhooks, and the deliveries of the events up to it (in push order).
    SELECT pe.event_id, pe.n, sum(pe.n) OVER (ORDER BY i.ord) AS total
    FROM (SELECT m.event_id, count(*) AS n FROM matched m GROUP BY m.event_id) pe
    JOIN inp i ON i.id = pe.event_id
  ), wide AS (
    -- Too many webhooks, or past the statement's share of deliveries.
    SELECT c.event_id FROM counted c WHERE c.n > inline_fanout OR c.total > statement_deliveries
  ), deliveries AS (
    INSERT INTO public.webhook_deliveries AS d (webhook_id, event_id, max_attempts, ordering_key, next_attempt_at)
    SELECT m.webhook_id, m.event_id, coalesce(m.max_attempts, i.max_attempts), i.ordering_key, now()
    FROM matched m
    JOIN inp i ON i.id = m.event_id
    WHERE m.event_id NOT IN (SELECT wd.event_id FROM wide wd)
    ORDER BY m.event_id, m.webhook_id
    RETURNING d.id, d.webhook_id
  ), jobs AS (
    -- A job for each webhook that got deliveries (it delivers whatever is
    -- due for that webhook), and a fan-out job per wide event; in the order
    -- of their first delivery's id or the event's (uuidv7: the order they
    -- were made in), so that the queue takes them first in, first out.
    SELECT graphile_worker.add_jobs(array_agg(specs.spec ORDER BY specs.first), false)
    FROM (
      -- As text: PostgreSQL 15 has no min(uuid), and uuids sort as their text.
      SELECT min(dl.id::text) AS first,
        ('httpqueue.deliver'::text, json_build_object('webhookId', dl.webhook_id), null::text, null::timestamptz,
          25::smallint, null::text, null::smallint, null::text[])::graphile_worker.job_spec AS spec
      FROM deliveries dl GROUP BY dl.webhook_id
      UNION ALL
      SELECT wd.event_id::text,
        ('httpqueue.fanout'::text, json_build_object('eventId', wd.event_id), null::text, null::timestamptz,
          null::smallint, null::text, null::smallint, null::text[])::graphile_worker.job_spec
      FROM wide wd
    ) specs
    HAVING count(*) > 0
  )
  SELECT i.ord, ins.id
  FROM inp i LEFT JOIN inserted ins ON ins.id = i.id
  -- Reading the jobs CTE is what runs it.
  WHERE (SELECT count(*) FROM jobs) >= 0
  ORDER BY i.ord;
END
$$;
--> statement-breakpoint
CREATE SCHEMA IF NOT EXISTS "httpqueue";
--> statement-breakpoint
-- PushEvent in SQL, for an application that shares the database: callable
-- inside its own transaction, so that the event is stored (with its
-- deliveries and their jobs) if and only if that transaction commits. The
-- same checks as the RPC, as errors with SQLSTATE 22023 whose message starts
-- with the argument's name; the same store (httpqueue_store_events). A
-- repeated idempotency key of the namespace returns the first event's id.
-- The payload arrives as jsonb: it is delivered as PostgreSQL writes jsonb.
-- Runs as its owner: a role needs USAGE on the schema httpqueue and EXECUTE
-- on this function, nothing else. Its search_path is pg_catalog alone (and
-- every object it uses is named with its schema), so that no function or
-- operator a caller can create is ever resolved in its place.
CREATE FUNCTION "httpqueue"."push_event"(
  namespace text,
  event text,
  payload jsonb,
  ttl_seconds integer DEFAULT 0,
  metadata jsonb DEFAULT '{}',
  idempotency_key text DEFAULT NULL,
  ordering_key text DEFAULT ''
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  settings record;
  ttl integer := coalesce(ttl_seconds, 0);
  meta jsonb := coalesce(metadata, '{}');
  idem text := nullif(idempotency_key, '');
  okey text := coalesce(ordering_key, '');
  size integer;
  entry record;
  stored uuid;
  field text;
  value text;
BEGIN
  FOREACH field IN ARRAY ARRAY['namespace', 'event'] LOOP
    value := CASE field WHEN 'namespace' THEN push_event.namespace ELSE push_event.event END;
    IF value IS NULL OR value = '' THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = field || ': is required';
    ELSIF length(value) > 128 THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = field || ': must be at most 128 characters';
    ELSIF value !~ '^[A-Za-z0-9][A-Za-z0-9._-]*$' THEN
      RAISE EXCEPTION USING ERRCODE = '22023',
        MESSAGE = field || ': may contain only letters, digits, ''.'', ''_'' and ''-'', and must start with a letter or digit';
    END IF;
  END LOOP;
  IF push_event.namespace = 'httpqueue' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'namespace: "httpqueue" is reserved for the server''s own events';
  END IF;
  SELECT s.default_ttl_seconds, s.max_ttl_seconds, s.max_payload_bytes, s.max_attempts INTO settings
    FROM public.push_settings s WHERE s.id = 1;
  IF NOT FOUND THEN
    -- No server has started on this database yet: the servers' defaults.
    SELECT 86400 AS default_ttl_seconds, 2592000 AS max_ttl_seconds, 262144 AS max_payload_bytes, 10 AS max_attempts
      INTO settings;
  END IF;
  IF payload IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'payload: is required: a JSON document';
  END IF;
  size := octet_length(payload::text);
  IF size > settings.max_payload_bytes THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('payload: is %s bytes; the limit is %s', size, settings.max_payload_bytes);
  END IF;
  IF ttl = 0 THEN
    ttl := settings.default_ttl_seconds;
  ELSIF ttl < 1 OR ttl > settings.max_ttl_seconds THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
      'ttl_seconds: must be between 1 and %s seconds (0 for the default, %s)',
      settings.max_ttl_seconds, settings.default_ttl_seconds);
  END IF;
  IF jsonb_typeof(meta) <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'metadata: must be a JSON object of strings';
  END IF;
  IF (SELECT count(*) FROM jsonb_object_keys(meta)) > 32 THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'metadata: must have at most 32 entries';
  END IF;
  FOR entry IN SELECT m.key, m.value FROM jsonb_each(meta) m LOOP
    IF jsonb_typeof(entry.value) <> 'string' THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('metadata[%s]: must be a string', to_json(entry.key));
    ELSIF entry.key = '' THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'metadata: keys must not be empty';
    ELSIF length(entry.key) > 128 OR length(entry.value #>> '{}') > 1024 THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
        'metadata[%s]: keys may have at most 128 characters, values 1024', to_json(left(entry.key, 64)));
    ELSIF entry.key ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]' OR (entry.value #>> '{}') ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]' THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
        'metadata[%s]: must not contain control characters', to_json(left(entry.key, 64)));
    END IF;
  END LOOP;
  IF idem IS NOT NULL AND idem !~ '^[\x21-\x7e]{1,255}$' THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'idempotency_key: must be 1 to 255 visible ASCII characters (no spaces)';
  END IF;
  IF okey !~ '^[\x21-\x7e]{0,255}$' THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'ordering_key: must be at most 255 visible ASCII characters (no spaces)';
  END IF;
  SELECT r.id INTO stored FROM public.httpqueue_store_events(json_build_array(json_build_object(
    'ord', 0, 'namespace', push_event.namespace, 'event', push_event.event, 'payload', payload::text,
    'ttl_seconds', ttl, 'metadata', meta, 'idempotency_key', idem, 'ordering_key', okey,
    'max_attempts', settings.max_attempts))) r;
  IF stored IS NULL THEN
    -- The key was used before in the namespace.
    SELECT e.id INTO stored FROM public.event_records e
      WHERE e.namespace = push_event.namespace AND e.idempotency_key = idem;
  END IF;
  RETURN stored;
END
$$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION "httpqueue"."push_event"(text, text, jsonb, integer, jsonb, text, text) FROM PUBLIC;
