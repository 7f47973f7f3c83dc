ALTER TABLE "push_settings" ADD COLUMN "idempotency_window_seconds" integer DEFAULT 86400 NOT NULL;--> statement-breakpoint
CREATE INDEX "event_records_payload_kept_idx" ON "event_records" USING btree ("id") WHERE "event_records"."payload_removed_at" is null;--> statement-breakpoint
-- What a push stores and queues, now with an idempotency window: a key is
-- remembered for idempotency_window seconds (null: push_settings', which each
-- server writes from IDEMPOTENCY_WINDOW as it starts). Within it, a push
-- with the key stores nothing: its id comes back null and existing_id is the
-- event that holds the key, with mismatch null when the push repeats that
-- event's name and payload, 'event' or 'payload' when it does not (the
-- payloads are the same when their texts are, or else when they are equal as
-- jsonb: key order, whitespace and the spelling of numbers do not matter).
-- Each push is answered on its own: a mismatch fails nothing else. After the
-- window (or once retention removed its event's payload) the key is given up
-- and the push stores a new event. A new signature and result (the old one
-- returned ord and id only, which callers still select): dropped and made
-- again, in the migrations' transaction.
DROP FUNCTION "httpqueue_store_events"(json, integer, integer);
--> statement-breakpoint
CREATE FUNCTION "httpqueue_store_events"(
  events json,
  inline_fanout integer DEFAULT 100,
  statement_deliveries integer DEFAULT 5000,
  idempotency_window integer DEFAULT NULL
)
RETURNS TABLE (ord integer, id uuid, existing_id uuid, mismatch text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  win integer := idempotency_window;
  stored_ords integer[];
  stored_ids uuid[];
BEGIN
  IF win IS NULL THEN
    SELECT s.idempotency_window_seconds INTO win FROM public.push_settings s WHERE s.id = 1;
    win := coalesce(win, 86400);
  END IF;

  -- Keys past the window give themselves up (in a statement of their own, so
  -- that the insert below finds them free). Of two pushes that free the same
  -- key at once, the second waits for the first's row lock, then finds the
  -- key gone and the first one's new event holding it.
  UPDATE public.event_records AS e SET idempotency_key = NULL
  FROM (
    SELECT DISTINCT x.namespace, x.idempotency_key
    FROM json_to_recordset(events) AS x(namespace text, idempotency_key text)
    WHERE x.idempotency_key IS NOT NULL
  ) k
  WHERE e.namespace = k.namespace AND e.idempotency_key = k.idempotency_key
    AND (e.created_at <= now() - make_interval(secs => win) OR e.payload_removed_at IS NOT NULL);

  -- The events (a key held in the namespace stores nothing), one delivery per
  -- receiving webhook, and a job per webhook that got some; an event with
  -- more than inline_fanout webhooks, or past statement_deliveries deliveries
  -- in all, gets a fan-out job instead. Each input row: ord, namespace,
  -- event, payload (JSON text), ttl_seconds, metadata, idempotency_key,
  -- ordering_key, max_attempts (the server's; a webhook's own wins).
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
  SELECT array_agg(i.ord ORDER BY i.ord), array_agg(ins.id ORDER BY i.ord) INTO stored_ords, stored_ids
  FROM inp i LEFT JOIN inserted ins ON ins.id = i.id
  -- Reading the jobs CTE is what runs it.
  WHERE (SELECT count(*) FROM jobs) >= 0;

  -- The event holding the key of each push that stored nothing, read by a
  -- statement of its own: one that committed while the insert waited on it
  -- is visible only from here.
  RETURN QUERY
  SELECT x.ord, s.id, e.id,
    CASE
      WHEN s.id IS NOT NULL OR e.id IS NULL THEN NULL
      WHEN e.event <> x.event THEN 'event'
      WHEN e.payload = x.payload THEN NULL
      WHEN e.payload_removed_at IS NULL AND e.payload::jsonb = x.payload::jsonb THEN NULL
      ELSE 'payload'
    END
  FROM json_to_recordset(events) AS x(ord int, namespace text, event text, payload text, idempotency_key text)
  JOIN unnest(stored_ords, stored_ids) AS s(ord, id) ON s.ord = x.ord
  LEFT JOIN public.event_records e
    ON s.id IS NULL AND e.namespace = x.namespace AND e.idempotency_key = x.idempotency_key
  ORDER BY x.ord;
END
$$;
--> statement-breakpoint
-- httpqueue.push_event with the idempotency window: a key used within it
-- returns the first event's id when the event name and payload are the same,
-- and raises 23505 (unique_violation) naming the key when they are not.
CREATE OR REPLACE FUNCTION "httpqueue"."push_event"(
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
  existing uuid;
  differs text;
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
  SELECT s.default_ttl_seconds, s.max_ttl_seconds, s.max_payload_bytes, s.max_attempts, s.idempotency_window_seconds
    INTO settings FROM public.push_settings s WHERE s.id = 1;
  IF NOT FOUND THEN
    -- No server has started on this database yet: the servers' defaults.
    SELECT 86400 AS default_ttl_seconds, 2592000 AS max_ttl_seconds, 262144 AS max_payload_bytes, 10 AS max_attempts,
      86400 AS idempotency_window_seconds
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
  SELECT r.id, r.existing_id, r.mismatch INTO stored, existing, differs FROM public.httpqueue_store_events(
    json_build_array(json_build_object(
      'ord', 0, 'namespace', push_event.namespace, 'event', push_event.event, 'payload', payload::text,
      'ttl_seconds', ttl, 'metadata', meta, 'idempotency_key', idem, 'ordering_key', okey,
      'max_attempts', settings.max_attempts)),
    idempotency_window => settings.idempotency_window_seconds) r;
  IF differs IS NOT NULL THEN
    -- The key is held, within the window, by an event with another name or
    -- payload: the same SQLSTATE as a unique key taken (PushEvent answers
    -- ALREADY_EXISTS).
    RAISE EXCEPTION USING ERRCODE = '23505', MESSAGE = format(
      'idempotency_key: %s was used in namespace %s by event %s with a different %s; a repeat within the idempotency window must have the same event name and payload',
      to_json(idem), to_json(push_event.namespace), existing,
      CASE differs WHEN 'event' THEN 'event name' ELSE 'payload' END);
  END IF;
  -- Not stored: the key was used within the window, by this same event.
  stored := coalesce(stored, existing);
  IF stored IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'the idempotency key''s event went while the push ran: retry';
  END IF;
  RETURN stored;
END
$$;
