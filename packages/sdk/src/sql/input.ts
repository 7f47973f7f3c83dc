/** What `pushEventInTransaction` takes: the fields of PushEvent, with a payload of any JSON value. */
export interface SqlPushEventInput {
  namespace: string;
  event: string;
  /**
   * The event's JSON document. A string is taken as JSON text and must parse;
   * any other value is JSON-encoded first.
   */
  payload: unknown;
  /** How long deliveries may keep trying, in whole seconds; 0 (the default) means the server's default. */
  ttlSeconds?: number | undefined;
  metadata?: Record<string, string> | undefined;
  /** A key seen before in the namespace returns the first event's id and stores nothing; "" means none. */
  idempotencyKey?: string | undefined;
  orderingKey?: string | undefined;
}

/**
 * The call, positional so that it does not depend on the function's parameter
 * names. JSON goes in as text and is cast to jsonb by the server: postgres.js
 * would JSON-encode a string bound straight to a jsonb parameter a second time.
 */
export const PUSH_EVENT_SQL =
  "select httpqueue.push_event($1::text, $2::text, $3::text::jsonb, $4::integer, $5::text::jsonb, $6::text, $7::text) as event_id";

// Undefined for functions, symbols and undefined, whatever the declared type says.
const stringify = JSON.stringify as (value: unknown) => string | undefined;

const INT4_MAX = 2 ** 31 - 1;

/**
 * The statement's parameters. Only what would fail before the function runs
 * is checked here (a failed cast or JSON parse names no field, and would abort
 * the caller's transaction); names, limits and metadata are the function's to
 * validate.
 */
export function pushEventParams(input: SqlPushEventInput): unknown[] {
  const { namespace, event, payload, ttlSeconds = 0, metadata = {}, idempotencyKey, orderingKey = "" } = input;
  for (const [field, value] of [
    ["namespace", namespace],
    ["event", event],
    ["orderingKey", orderingKey],
  ] as const) {
    if (typeof value !== "string") throw new TypeError(`${field}: must be a string, got ${typeof value}`);
  }
  if (idempotencyKey !== undefined && typeof idempotencyKey !== "string") {
    throw new TypeError(`idempotencyKey: must be a string, got ${typeof idempotencyKey}`);
  }
  if (!Number.isInteger(ttlSeconds) || Math.abs(ttlSeconds) > INT4_MAX) {
    throw new RangeError(
      `ttlSeconds: must be a whole number of seconds, at most ${INT4_MAX}, got ${String(ttlSeconds)}`,
    );
  }
  return [
    namespace,
    event,
    encodePayload(payload),
    ttlSeconds,
    encodeJson("metadata", metadata),
    idempotencyKey || null,
    orderingKey,
  ];
}

function encodePayload(payload: unknown): string {
  if (typeof payload === "string") {
    try {
      JSON.parse(payload);
    } catch (err) {
      throw new SyntaxError(`payload: not JSON text (${err instanceof Error ? err.message : String(err)})`, {
        cause: err,
      });
    }
    return payload;
  }
  return encodeJson("payload", payload);
}

function encodeJson(field: string, value: unknown): string {
  let json: string | undefined;
  try {
    json = stringify(value);
  } catch (err) {
    throw new TypeError(`${field}: cannot be encoded as JSON (${err instanceof Error ? err.message : String(err)})`, {
      cause: err,
    });
  }
  if (json === undefined) throw new TypeError(`${field}: a value of type ${typeof value} cannot be encoded as JSON`);
  return json;
}
