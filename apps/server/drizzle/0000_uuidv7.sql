-- UUIDv7 ids: time-ordered, so new rows land at the end of their indexes and
-- "most recent first" is "id descending". PostgreSQL 18 has uuidv7() built in;
-- older servers get this version, which (like PostgreSQL 18's) spends the 12
-- bits after the version on the sub-millisecond part of the clock, so ids made
-- microseconds apart sort in the order they were made.
DO $$
BEGIN
  IF current_setting('server_version_num')::int < 180000 THEN
    CREATE OR REPLACE FUNCTION public.uuidv7() RETURNS uuid
    LANGUAGE plpgsql VOLATILE PARALLEL SAFE
    AS $fn$
    DECLARE
      us bigint := floor(extract(epoch FROM clock_timestamp()) * 1000000);
      sub int := ((us % 1000) * 4096 / 1000)::int;
      bytes bytea := uuid_send(gen_random_uuid()); -- random, with the RFC 9562 variant bits
    BEGIN
      bytes := overlay(bytes PLACING substring(int8send(us / 1000) FROM 3) FROM 1 FOR 6);
      bytes := set_byte(bytes, 6, 112 | (sub >> 8)); -- version 7, then the top 4 bits of sub
      bytes := set_byte(bytes, 7, sub & 255);
      RETURN encode(bytes, 'hex')::uuid;
    END
    $fn$;
  END IF;
END
$$;
