-- UUIDv7 ids: time-ordered, so new rows land at the end of their indexes and
-- "most recent first" is "id descending". PostgreSQL 18 has uuidv7() built in;
-- older servers get this SQL version (a random v4 UUID with its first 48 bits
-- replaced by the Unix time in milliseconds and its version bits set to 7).
DO $$
BEGIN
  IF current_setting('server_version_num')::int < 180000 THEN
    CREATE OR REPLACE FUNCTION public.uuidv7() RETURNS uuid
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $fn$
      SELECT encode(
        set_bit(
          set_bit(
            overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
            52, 1),
          53, 1),
        'hex')::uuid
    $fn$;
  END IF;
END
$$;
