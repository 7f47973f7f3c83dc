import assert from "node:assert/strict";
import { createHmac, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import { describe, it } from "node:test";
import { Webhook } from "standardwebhooks";
import { checkSigningSecret, generateSigningKey, signatureOf, signWebhook, verificationKeyOf } from "../src/signing.js";
import {
  signWebhook as signedHeaders,
  verifyWebhook,
  verifyWebhookSignature,
  WebhookVerificationError,
  type WebhookVerificationFailure,
} from "../src/index.js";

/**
 * Standard Webhooks signing, checked against independent implementations: the
 * standardwebhooks npm library for "v1" (HMAC-SHA256), plain node:crypto
 * ed25519 for "v1a", and the test vectors published with the spec's reference
 * libraries.
 */

const BODY = '{"user":{"id":42,"name":"Zoë"},"plan":"pro"}';
const hmacSecret = (bytes = 32) => `whsec_${randomBytes(bytes).toString("base64")}`;
const now = () => Math.floor(Date.now() / 1000);

function headersOf(id: string, timestamp: number, signature: string) {
  return { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": signature };
}

function rejects(fn: () => unknown, reason: WebhookVerificationFailure, message: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof WebhookVerificationError, `expected a WebhookVerificationError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    assert.match(err.message, message);
    return true;
  });
}

/** The raw 32-byte ed25519 public key inside a whpk_ key, as a node:crypto KeyObject built from its JWK. */
function publicKeyObject(whpk: string) {
  assert.match(whpk, /^whpk_/);
  const x = Buffer.from(whpk.slice("whpk_".length), "base64");
  assert.equal(x.length, 32);
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: x.toString("base64url") }, format: "jwk" });
}

/** A key pair made by node:crypto alone, with its whsk_ (seed, or seed and public key) and whpk_ forms. */
function nodeKeyPair() {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d ?? "", "base64url");
  const x = Buffer.from(jwk.x ?? "", "base64url");
  return {
    privateKey,
    publicKey,
    seedSecret: `whsk_${seed.toString("base64")}`,
    pairSecret: `whsk_${Buffer.concat([seed, x]).toString("base64")}`,
    whpk: `whpk_${x.toString("base64")}`,
  };
}

describe("v1 (HMAC-SHA256)", () => {
  it("reproduces the test vectors published with the spec's reference libraries", () => {
    // libraries/{javascript,python,go,java,…}: "sign function works".
    const vector = {
      secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
      timestamp: 1614265330,
      body: '{"test": 2432232314}',
      signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    };
    assert.equal(signatureOf(vector.secret, vector.id, vector.timestamp, vector.body), vector.signature);
    assert.equal(
      signatureOf(vector.secret, vector.id, vector.timestamp, Buffer.from(vector.body)),
      vector.signature,
      "the same from the body's bytes",
    );
    const headers = headersOf(vector.id, vector.timestamp, vector.signature);
    assert.deepEqual(verifyWebhook(vector.body, headers, vector.secret, { now: vector.timestamp * 1000 }), {
      test: 2432232314,
    });
    // libraries/rust: test_sign.
    assert.equal(
      signatureOf(
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1649367553,
        '{"email":"test@example.com","username":"test_user"}',
      ),
      "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    );
  });

  it("makes the signatures the standardwebhooks library makes, and each side verifies the other's", () => {
    for (const bytes of [24, 32, 64]) {
      const secret = hmacSecret(bytes);
      const ts = now();
      const ours = signatureOf(secret, "msg_1", ts, BODY);
      const theirs = new Webhook(secret).sign("msg_1", new Date(ts * 1000), BODY);
      assert.equal(ours, theirs, `${bytes}-byte secret`);
      assert.deepEqual(new Webhook(secret).verify(BODY, headersOf("msg_1", ts, ours)), JSON.parse(BODY));
      assert.deepEqual(verifyWebhook(BODY, headersOf("msg_1", ts, theirs), secret), JSON.parse(BODY));
      assert.throws(() => new Webhook(hmacSecret()).verify(BODY, headersOf("msg_1", ts, ours)), /signature/i);
    }
  });

  it("generates whsec_ secrets of 32 random bytes, which checkSigningSecret accepts", () => {
    const { secret, publicKey } = generateSigningKey("hmac-sha256");
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(publicKey, undefined);
    assert.notEqual(secret, generateSigningKey("hmac-sha256").secret);
    assert.equal(checkSigningSecret(secret), "hmac-sha256");
    assert.equal(verificationKeyOf(secret), secret, "a receiver verifies with the secret itself");
  });
});

describe("v1a (ed25519)", () => {
  it("reproduces the test vector of the spec's reference Go library (a whsk_ seed)", () => {
    // libraries/go/webhook_asymmetric_test.go: TestAsymmetricWebhookSign (standard-webhooks PR #253).
    const seed = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
    const expected = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";
    const secret = `whsk_${seed}`;
    assert.equal(signatureOf(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'), expected);
    // The 64-byte form (seed, then public key) of the same key signs the same.
    const publicKey = Buffer.from(verificationKeyOf(secret).slice("whpk_".length), "base64");
    const pair = `whsk_${Buffer.concat([Buffer.from(seed, "base64"), publicKey]).toString("base64")}`;
    assert.equal(checkSigningSecret(pair), "ed25519");
    assert.equal(signatureOf(pair, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'), expected);
  });

  it("generates a whsk_ key (seed and public key) and its whpk_ public key", () => {
    const { secret, publicKey } = generateSigningKey("ed25519");
    assert.match(secret, /^whsk_[A-Za-z0-9+/]{86}==$/, "64 bytes");
    assert.match(publicKey ?? "", /^whpk_[A-Za-z0-9+/]{43}=$/, "32 bytes");
    assert.equal(checkSigningSecret(secret), "ed25519");
    assert.equal(verificationKeyOf(secret), publicKey);
    const bytes = Buffer.from(secret.slice("whsk_".length), "base64");
    assert.deepEqual(bytes.subarray(32), Buffer.from((publicKey ?? "").slice("whpk_".length), "base64"));
    assert.notEqual(secret, generateSigningKey("ed25519").secret);
  });

  it("signs so that node:crypto verifies with the whpk_ key, and not another key or message", () => {
    const { secret, publicKey } = generateSigningKey("ed25519");
    const ts = now();
    const signature = signatureOf(secret, "msg_1", ts, BODY);
    assert.match(signature, /^v1a,[A-Za-z0-9+/]{86}==$/);
    const bytes = Buffer.from(signature.slice("v1a,".length), "base64");
    const key = publicKeyObject(publicKey ?? "");
    assert.ok(verify(null, Buffer.from(`msg_1.${ts}.${BODY}`), key, bytes));
    assert.ok(!verify(null, Buffer.from(`msg_2.${ts}.${BODY}`), key, bytes));
    assert.ok(!verify(null, Buffer.from(`msg_1.${ts}.${BODY}`), publicKeyObject(nodeKeyPair().whpk), bytes));
    assert.equal(signatureOf(secret, "msg_1", ts, Buffer.from(BODY)), signature, "the same from the body's bytes");
  });

  it("reads whsk_ keys made by node:crypto, seed alone or with the public key, and signs as node:crypto does", () => {
    const pair = nodeKeyPair();
    const ts = now();
    const expected = `v1a,${sign(null, Buffer.from(`msg_1.${ts}.${BODY}`), pair.privateKey).toString("base64")}`;
    assert.equal(signatureOf(pair.seedSecret, "msg_1", ts, BODY), expected);
    assert.equal(signatureOf(pair.pairSecret, "msg_1", ts, BODY), expected);
    assert.equal(verificationKeyOf(pair.seedSecret), pair.whpk);
    assert.equal(verificationKeyOf(pair.pairSecret), pair.whpk);
  });

  it("verifyWebhook accepts node:crypto signatures with the whpk_ key, and refuses them with another", () => {
    const pair = nodeKeyPair();
    const ts = now();
    const signature = `v1a,${sign(null, Buffer.from(`evt_7.${ts}.${BODY}`), pair.privateKey).toString("base64")}`;
    const headers = headersOf("evt_7", ts, signature);
    assert.deepEqual(verifyWebhook(BODY, headers, pair.whpk), JSON.parse(BODY));
    assert.deepEqual(verifyWebhookSignature(Buffer.from(BODY), headers, pair.whpk), {
      id: "evt_7",
      timestamp: new Date(ts * 1000),
    });
    rejects(() => verifyWebhook(BODY, headers, nodeKeyPair().whpk), "no_matching_signature", /no signature matches/);
    rejects(() => verifyWebhook(`${BODY} `, headers, pair.whpk), "no_matching_signature", /no signature matches/);
  });
});

describe("schemes do not cross", () => {
  it("a v1 signature never passes for a whpk_ key, even an HMAC keyed by the public key's own bytes", () => {
    const { secret, publicKey = "" } = generateSigningKey("ed25519");
    const ts = now();
    const content = `msg_1.${ts}.${BODY}`;
    // The public key is public: an HMAC keyed by it is what anyone could forge.
    const publicBytes = Buffer.from(publicKey.slice("whpk_".length), "base64");
    const forged = `v1,${createHmac("sha256", publicBytes).update(content).digest("base64")}`;
    rejects(() => verifyWebhook(BODY, headersOf("msg_1", ts, forged), publicKey), "no_matching_signature", /no "v1a,"/);
    // A genuine v1a signature relabelled v1 does not pass either.
    const genuine = signatureOf(secret, "msg_1", ts, BODY);
    const relabelled = genuine.replace(/^v1a,/, "v1,");
    rejects(
      () => verifyWebhook(BODY, headersOf("msg_1", ts, relabelled), publicKey),
      "no_matching_signature",
      /no "v1a,"/,
    );
    assert.ok(verifyWebhook(BODY, headersOf("msg_1", ts, genuine), publicKey));
  });

  it("a v1a signature never passes for a whsec_ secret", () => {
    const hmac = hmacSecret();
    const { secret } = generateSigningKey("ed25519");
    const ts = now();
    const v1a = signatureOf(secret, "msg_1", ts, BODY);
    rejects(() => verifyWebhook(BODY, headersOf("msg_1", ts, v1a), hmac), "no_matching_signature", /no "v1,"/);
    // Nor an HMAC relabelled v1a.
    const v1 = signatureOf(hmac, "msg_1", ts, BODY);
    const relabelled = v1.replace(/^v1,/, "v1a,");
    rejects(() => verifyWebhook(BODY, headersOf("msg_1", ts, relabelled), hmac), "no_matching_signature", /no "v1,"/);
  });

  it("a receiver is refused the private whsk_ key and pointed to the public one", () => {
    const { secret } = generateSigningKey("ed25519");
    const headers = signedHeaders(BODY, secret);
    rejects(
      () => verifyWebhook(BODY, headers, secret),
      "invalid_secret",
      /whsk_ key is the private signing key.*whpk_/,
    );
    assert.ok(verifyWebhook(BODY, headers, verificationKeyOf(secret)));
  });
});

describe("several signatures and several keys (rotation)", () => {
  it("signWebhook signs with each secret, space-separated, and each key verifies alone", () => {
    const old = hmacSecret();
    const current = hmacSecret();
    const ed = generateSigningKey("ed25519");
    const ts = now();
    const header = signWebhook([old, current, ed.secret], "msg_1", ts, BODY);
    const parts = header.split(" ");
    assert.deepEqual(parts, [
      signatureOf(old, "msg_1", ts, BODY),
      signatureOf(current, "msg_1", ts, BODY),
      signatureOf(ed.secret, "msg_1", ts, BODY),
    ]);
    const headers = headersOf("msg_1", ts, header);
    for (const key of [old, current, ed.publicKey ?? ""]) assert.ok(verifyWebhook(BODY, headers, key));
    // The standardwebhooks library finds its v1 among them and passes over the v1a.
    assert.deepEqual(new Webhook(current).verify(BODY, headers), JSON.parse(BODY));
    rejects(() => verifyWebhook(BODY, headers, hmacSecret()), "no_matching_signature", /no signature matches/);
    assert.throws(() => signWebhook([], "msg_1", ts, BODY), { name: "TypeError", message: /at least one secret/ });
  });

  it("verifyWebhook takes an array of keys: any one matching signature will do", () => {
    const old = hmacSecret();
    const current = hmacSecret();
    const ed = generateSigningKey("ed25519");
    const ts = now();
    const byOld = headersOf("msg_1", ts, signatureOf(old, "msg_1", ts, BODY));
    const byNew = headersOf("msg_1", ts, signatureOf(current, "msg_1", ts, BODY));
    const byEd = headersOf("msg_1", ts, signatureOf(ed.secret, "msg_1", ts, BODY));
    for (const headers of [byOld, byNew]) assert.ok(verifyWebhook(BODY, headers, [old, current]));
    // A receiver moving from HMAC to ed25519 holds one key of each.
    for (const headers of [byOld, byEd]) assert.ok(verifyWebhook(BODY, headers, [old, ed.publicKey ?? ""]));
    rejects(() => verifyWebhook(BODY, byNew, [old, ed.publicKey ?? ""]), "no_matching_signature", /no signature/);
    rejects(() => verifyWebhook(BODY, byEd, [old, current]), "no_matching_signature", /no "v1," signature/);
    rejects(() => verifyWebhook(BODY, byOld, []), "invalid_secret", /no key was given/);
    rejects(
      () => verifyWebhook(BODY, byOld, [old, "hunter2"]),
      "invalid_secret",
      /^key 2 of 2: .*whsec_ followed by base64/,
    );
  });

  it("the headers helper signs with a whsk_ key or several secrets", () => {
    const ed = generateSigningKey("ed25519");
    const headers = signedHeaders(BODY, ed.secret, { id: "msg_5" });
    assert.match(headers["webhook-signature"], /^v1a,/);
    assert.ok(verifyWebhook(BODY, headers, ed.publicKey ?? ""));
    const [a, b] = [hmacSecret(), hmacSecret()];
    const both = signedHeaders(BODY, [a, b]);
    assert.equal(both["webhook-signature"].split(" ").length, 2);
    assert.ok(verifyWebhook(BODY, both, b));
  });
});

describe("checkSigningSecret", () => {
  function refuses(secret: unknown, message: RegExp) {
    assert.throws(
      () => checkSigningSecret(secret as string),
      (err: unknown) => {
        assert.ok(err instanceof TypeError, `expected a TypeError, got ${String(err)}`);
        assert.match(err.message, message);
        if (typeof secret === "string" && secret.length > 8) {
          const body = secret.replace(/^wh(sec|sk|pk)_/, "");
          assert.ok(!err.message.includes(secret), "the message does not quote the secret");
          assert.ok(!err.message.includes(body.slice(0, 8)), "nor any part of it");
        }
        return true;
      },
    );
  }

  it("accepts whsec_ secrets of 24 to 64 bytes", () => {
    for (const bytes of [24, 25, 32, 48, 64]) assert.equal(checkSigningSecret(hmacSecret(bytes)), "hmac-sha256");
  });

  it("refuses 23 and 65 bytes, saying how many there are", () => {
    refuses(hmacSecret(23), /24 to 64 bytes; this one decodes to 23 bytes/);
    refuses(hmacSecret(65), /24 to 64 bytes; this one decodes to 65 bytes/);
  });

  it("refuses what is not base64", () => {
    const text = randomBytes(32).toString("base64");
    refuses(`whsec_${text.slice(0, -1)}`, /not base64/); // padding cut
    refuses(`whsec_${text.replace(/.$/, "").replace(/^./, "$")}=`, /not base64/);
    refuses(`whsec_-_${text.slice(2)}`, /not base64/); // base64url's alphabet
    refuses(`whsec_${text} `, /not base64/);
    refuses("whsec_", /nothing follows whsec_/);
    refuses(`whsk_${text.slice(0, -1)}!`, /what follows whsk_ is not base64/);
  });

  it("refuses other prefixes, a public key, and what is not a string", () => {
    const text = randomBytes(32).toString("base64");
    refuses(text, /starts with "whsec_" \(HMAC-SHA256\) or "whsk_"/);
    refuses(`sk_${text}`, /starts with "whsec_"/);
    refuses(`WHSEC_${text}`, /starts with "whsec_"/);
    refuses(generateSigningKey("ed25519").publicKey, /whpk_ key is a public key.*cannot make them/);
    refuses(undefined, /must be a string, not undefined/);
    refuses(42, /must be a string, not number/);
  });

  it("accepts whsk_ keys of a 32-byte seed or 64 bytes, and refuses other sizes and a public half that does not match", () => {
    const pair = nodeKeyPair();
    assert.equal(checkSigningSecret(pair.seedSecret), "ed25519");
    assert.equal(checkSigningSecret(pair.pairSecret), "ed25519");
    refuses(`whsk_${randomBytes(33).toString("base64")}`, /32-byte ed25519 seed.*decodes to 33 bytes/);
    refuses(`whsk_${randomBytes(31).toString("base64")}`, /decodes to 31 bytes/);
    const seed = Buffer.from(pair.seedSecret.slice("whsk_".length), "base64");
    const otherPublic = Buffer.from(nodeKeyPair().whpk.slice("whpk_".length), "base64");
    refuses(`whsk_${Buffer.concat([seed, otherPublic]).toString("base64")}`, /last 32 bytes are not the public key/);
  });

  it("signatureOf and verificationKeyOf refuse the same secrets, and bad ids and timestamps", () => {
    const short = hmacSecret(23);
    assert.throws(() => signatureOf(short, "msg_1", now(), BODY), {
      name: "TypeError",
      message: /decodes to 23 bytes/,
    });
    assert.throws(() => verificationKeyOf(short), { name: "TypeError", message: /decodes to 23 bytes/ });
    const secret = hmacSecret();
    for (const ts of [1.5, -1, Number.NaN, 2 ** 53]) {
      assert.throws(() => signatureOf(secret, "msg_1", ts, BODY), { name: "TypeError", message: /timestamp/ });
    }
    assert.throws(() => signatureOf(secret, "", now(), BODY), { name: "TypeError", message: /message id/ });
    assert.throws(() => generateSigningKey("rsa" as "ed25519"), {
      name: "TypeError",
      message: /"hmac-sha256" or "ed25519"/,
    });
  });
});
