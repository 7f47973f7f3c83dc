DROP INDEX "event_records_payload_kept_idx";--> statement-breakpoint
CREATE INDEX "event_records_payload_kept_idx" ON "event_records" USING btree ("created_at") WHERE "event_records"."payload_removed_at" is null;--> statement-breakpoint
-- The push of 0008, with plans that stay right whatever the statistics say:
-- expired keys are found key by key (and only updated when there are), the
-- events holding the keys of pushes that stored nothing too, and when every
-- push stored its event the answer comes from the insert alone.
CREATE OR REPLACE FUNCTION "httpqueue_store_events"(
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
  key_namespaces text[];
  keys text[];
  expired uuid[];
  stored_ords integer[];
  stored_ids uuid[];
BEGIN
  IF win IS NULL THEN
    SELECT s.idempotency_window_seconds INTO win FROM public.push_settings s WHERE s.id = 1;
    win := coalesce(win, 86400);
  END IF;

  SELECT array_agg(x.namespace), array_agg(x.idempotency_key) INTO key_namespaces, keys
  FROM json_to_recordset(events) AS x(namespace text, idempotency_key text)
  WHERE x.idempotency_key IS NOT NULL;

  -- Keys past the window give themselves up (in statements of their own, so
  -- that the insert below finds them free). Of two pushes that free the same
  -- key at once, the second waits for the first's row lock, then finds the
  -- key gone (and, below, the first one's new event holding it). Each key is
  -- looked up by the unique index on its own (OFFSET 0): these plans are
  -- cached for any input, and one driven by the table's keyed rows would
  -- read them all.
  IF keys IS NOT NULL THEN
    SELECT array_agg(h.id) INTO expired
    FROM unnest(key_namespaces, keys) AS k(namespace, idempotency_key)
    CROSS JOIN LATERAL (
      SELECT er.id, er.created_at, er.payload_removed_at FROM public.event_records er
      WHERE er.namespace = k.namespace AND er.idempotency_key = k.idempotency_key
      OFFSET 0
    ) h
    WHERE h.created_at <= now() - make_interval(secs => win) OR h.payload_removed_at IS NOT NULL;
    IF expired IS NOT NULL THEN
      UPDATE public.event_records AS e SET idempotency_key = NULL
      WHERE e.id = ANY (expired) AND e.idempotency_key IS NOT NULL;
    END IF;
  END IF;

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

  IF keys IS NULL OR array_position(stored_ids, NULL) IS NULL THEN
    -- Every push stored its event.
    RETURN QUERY SELECT s.ord, s.id, NULL::uuid, NULL::text FROM unnest(stored_ords, stored_ids) AS s(ord, id)
      ORDER BY s.ord;
    RETURN;
  END IF;

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
  LEFT JOIN LATERAL (
    SELECT er.id, er.event, er.payload, er.payload_removed_at FROM public.event_records er
    WHERE s.id IS NULL AND er.namespace = x.namespace AND er.idempotency_key = x.idempotency_key
    OFFSET 0
  ) e ON true
  ORDER BY x.ord;
END
$$;
