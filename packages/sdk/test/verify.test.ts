import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { Webhook } from "standardwebhooks";
import {
  signWebhook,
  verifyWebhook,
  verifyWebhookSignature,
  WebhookVerificationError,
  type WebhookVerificationFailure,
} from "../src/index.js";

/**
 * Signatures made by the standardwebhooks library (an independent
 * implementation) must verify here, and ours must verify there. Deliveries
 * signed by the real server are checked in the server package's sdk tests.
 */

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const BODY = '{"user":{"id":42,"name":"Zoë"},"plan":"pro"}';
const NOW = new Date("2026-11-28T12:00:00Z");

function signed(body = BODY, { secret = SECRET, at = NOW, id = "msg_1" } = {}) {
  const signature = new Webhook(secret).sign(id, at, body);
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": signature,
  };
}

function rejects(fn: () => unknown, reason: WebhookVerificationFailure, message: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof WebhookVerificationError, `expected a WebhookVerificationError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    assert.match(err.message, message);
    return true;
  });
}

describe("verifyWebhook", () => {
  it("accepts a request signed by the standardwebhooks library and returns the parsed payload", () => {
    const payload = verifyWebhook(BODY, signed(), SECRET, { now: NOW });
    assert.deepEqual(payload, { user: { id: 42, name: "Zoë" }, plan: "pro" });
  });

  it("takes the body as a string, a Buffer, a Uint8Array or an ArrayBuffer", () => {
    const headers = signed();
    const bytes = Buffer.from(BODY, "utf8");
    const view = new Uint8Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    for (const body of [BODY, bytes, view, view.buffer]) {
      assert.deepEqual(verifyWebhook(body, headers, SECRET, { now: NOW }), JSON.parse(BODY));
    }
  });

  it("reads Node, Express/Fastify-style and Fetch headers, in any case", () => {
    const headers = signed();
    const fetchHeaders = new Headers(headers);
    const shouted = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    const nodeStyle: Record<string, string | string[] | undefined> = { ...headers, "x-other": ["a", "b"] };
    for (const h of [headers, fetchHeaders, shouted, nodeStyle]) {
      assert.deepEqual(verifyWebhook(BODY, h, SECRET, { now: NOW }), JSON.parse(BODY));
    }
  });

  it("accepts the secret with or without the whsec_ prefix", () => {
    assert.ok(verifyWebhook(BODY, signed(), SECRET.slice("whsec_".length), { now: NOW }));
  });

  it("accepts any one of several signatures (secret rotation)", () => {
    const other = `whsec_${randomBytes(32).toString("base64")}`;
    const headers = signed();
    const rotated = {
      ...headers,
      "webhook-signature": `${signed(BODY, { secret: other })["webhook-signature"]} v2,abc ${headers["webhook-signature"]}`,
    };
    assert.ok(verifyWebhook(BODY, rotated, SECRET, { now: NOW }));
  });

  it("rejects a tampered body, a wrong secret and a signature of another message", () => {
    const headers = signed();
    rejects(
      () => verifyWebhook(BODY.replace("pro", "free"), headers, SECRET, { now: NOW }),
      "no_matching_signature",
      /no signature matches/,
    );
    const wrong = `whsec_${randomBytes(32).toString("base64")}`;
    rejects(() => verifyWebhook(BODY, headers, wrong, { now: NOW }), "no_matching_signature", /signing secret/);
    rejects(
      () => verifyWebhook(BODY, { ...headers, "webhook-id": "msg_2" }, SECRET, { now: NOW }),
      "no_matching_signature",
      /no signature matches/,
    );
    rejects(
      () => verifyWebhook(BODY, { ...headers, "webhook-signature": "v2,abc" }, SECRET, { now: NOW }),
      "no_matching_signature",
      /no "v1," signature/,
    );
  });

  it("rejects timestamps outside the tolerance, which is configurable", () => {
    const sixMinutes = 6 * 60 * 1000;
    const old = signed(BODY, { at: new Date(NOW.getTime() - sixMinutes) });
    rejects(() => verifyWebhook(BODY, old, SECRET, { now: NOW }), "timestamp_too_old", /360 seconds old.*300 seconds/);
    const future = signed(BODY, { at: new Date(NOW.getTime() + sixMinutes) });
    rejects(() => verifyWebhook(BODY, future, SECRET, { now: NOW }), "timestamp_too_new", /in the future/);
    assert.ok(verifyWebhook(BODY, old, SECRET, { now: NOW, toleranceSeconds: 600 }));
    rejects(
      () =>
        verifyWebhook(BODY, signed(BODY, { at: new Date(NOW.getTime() - 2000) }), SECRET, {
          now: NOW,
          toleranceSeconds: 1,
        }),
      "timestamp_too_old",
      /2 seconds old/,
    );
  });

  it("checks against the current time by default", () => {
    const fresh = signed(BODY, { at: new Date() });
    assert.ok(verifyWebhook(BODY, fresh, SECRET));
    rejects(() => verifyWebhook(BODY, signed(), SECRET), "timestamp_too_old", /seconds old/);
  });

  it("names a missing or malformed header", () => {
    const headers = signed();
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"] as const) {
      const { [name]: _, ...rest } = headers;
      rejects(() => verifyWebhook(BODY, rest, SECRET, { now: NOW }), "missing_header", new RegExp(`${name} header`));
      rejects(() => verifyWebhook(BODY, new Headers(rest), SECRET, { now: NOW }), "missing_header", /is missing/);
    }
    rejects(
      () => verifyWebhook(BODY, { ...headers, "webhook-timestamp": "yesterday" }, SECRET, { now: NOW }),
      "invalid_timestamp",
      /not a Unix time/,
    );
  });

  it("rejects a body that is not JSON once the signature holds", () => {
    rejects(() => verifyWebhook("not json", signed("not json"), SECRET, { now: NOW }), "invalid_body", /not JSON/);
    rejects(() => verifyWebhook("", signed(""), SECRET, { now: NOW }), "invalid_body", /empty.*GET/);
  });

  it("rejects a secret that is not a webhook secret", () => {
    for (const secret of ["", "whsec_", "whsec_not base64!", "hunter2"]) {
      rejects(() => verifyWebhook(BODY, signed(), secret, { now: NOW }), "invalid_secret", /whsec_ followed by base64/);
    }
  });
});

describe("verifyWebhookSignature", () => {
  it("checks an empty body (GET deliveries) and returns the id and time", () => {
    const verified = verifyWebhookSignature("", signed(""), SECRET, { now: NOW });
    assert.deepEqual(verified, { id: "msg_1", timestamp: NOW });
  });
});

describe("signWebhook", () => {
  it("signs so that the standardwebhooks library verifies it, and so do we", () => {
    const headers = signWebhook(BODY, SECRET, { id: "msg_9" });
    assert.equal(headers["webhook-id"], "msg_9");
    assert.deepEqual(new Webhook(SECRET).verify(BODY, headers), JSON.parse(BODY));
    assert.deepEqual(verifyWebhook(BODY, headers, SECRET), JSON.parse(BODY));
    const generatedId = signWebhook(BODY, SECRET)["webhook-id"];
    assert.notEqual(generatedId, signWebhook(BODY, SECRET)["webhook-id"]);
  });
});
