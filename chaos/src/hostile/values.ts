// Hostile values, by kind. Strings are bytes: some are not UTF-8 at all.
// URLs only ever point at loopback (port 1, where nothing listens) or are
// invalid: whatever gets registered, no delivery leaves the machine.
import { randomUUID } from "node:crypto";
import type { Random } from "../random.js";

const utf8 = (s: string) => Buffer.from(s, "utf8");

const UNICODE = [
  "🚀",
  "💩".repeat(1000),
  "\u202egnp.exe",
  "e\u0301".repeat(500),
  "\u200b\u200c\u200d\ufeff",
  "日本語テキスト",
  "Ω≈ç√∫˜µ≤≥÷",
  "\uffff\ufffe",
  "\u{10ffff}",
  "\u2028\u2029",
  "\ufffd",
  "ａｂｃ",
].map(utf8);

const CONTROL = [
  "a\u0000b",
  "\u0000",
  "\u0001\u0002\u001b[31mred",
  "\r\n\r\nHTTP/1.1 200 OK\r\n",
  "\t\v\f",
  "\u007f\u0085\u009b",
  "X-A\r\nInjected: 1",
].map(utf8);

const NOT_UTF8 = [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x61, 0xe2, 0x82]].map(
  (bytes) => Buffer.from(bytes),
);

const INJECTION = [
  "' or 1=1 --",
  "'; drop table webhook_registrations; --",
  "$1",
  "%s%s%s%n",
  "${jndi:ldap://127.0.0.1:1/a}",
  "../../../../etc/passwd",
  "<script>alert(1)</script>",
  "\\",
  '"',
  "{{7*7}}",
  "null",
  "undefined",
  "NaN",
  "__proto__",
  "constructor",
].map(utf8);

/** Ids: malformed, and well-formed ones that name nothing. Made when picked (random ones differ each time). */
const IDS: (() => string)[] = [
  () => randomUUID(),
  () => "00000000-0000-0000-0000-000000000000",
  () => "ffffffff-ffff-ffff-ffff-ffffffffffff",
  () => randomUUID().toUpperCase(),
  () => `{${randomUUID()}}`,
  () => `${randomUUID()}\n`,
  () => randomUUID().slice(0, 35),
  () => `${randomUUID()}0`,
  () => randomUUID().replaceAll("-", ""),
  () => "-1",
  () => "0",
  () => "9".repeat(40),
  () => "0192f5a0-0000-7000-8000-00000000000g",
];

const URLS = [
  "http://127.0.0.1:1/",
  "http://[::1]:1/x",
  "http://localhost:1/",
  "https://127.0.0.1:1/",
  "ftp://127.0.0.1:1/",
  "javascript:alert(1)",
  "file:///etc/passwd",
  "http://user:pass@127.0.0.1:1/",
  "http://127.0.0.1:99999/",
  "http://0x7f.1:1/",
  `http://127.0.0.1:1/${"a".repeat(10_000)}`,
  "//127.0.0.1:1/",
  "http://127.0.0.1:1/%00",
  "http://127.0.0.1:1/\u0000",
  "http:",
  "http://",
  "127.0.0.1:1",
].map(utf8);

const JSON_TEXTS = [
  "{}",
  "[]",
  "null",
  "1e400",
  "-0",
  '{"a":"\\u0000"}',
  '{"a":"\\ud800"}',
  "[".repeat(100_000),
  `${'{"a":'.repeat(5_000)}1${"}".repeat(5_000)}`,
  `${"[".repeat(5_000)}${"]".repeat(5_000)}`,
  '{"a":1,"a":2}',
  `"${"x".repeat(300_000)}"`,
  "123456789012345678901234567890",
  "true",
  '{"plan":["pro",{"x":[[]]}]}',
  "{",
  "",
].map(utf8);

const NAMES = ["*", "order.*", "a.*.*", ".", "-a", "a b", "httpqueue", "A".repeat(128), "a".repeat(129), "ns/evt"].map(
  utf8,
);

/** A hostile string, as the bytes to put on the wire. `huge` allows strings of a mebibyte. */
export function hostileString(r: Random, huge = false): Buffer {
  switch (r.int(huge ? 12 : 11)) {
    case 0:
      return r.pick(UNICODE);
    case 1:
      return r.pick(CONTROL);
    case 2:
      return r.pick(NOT_UTF8);
    case 3:
      return r.pick(INJECTION);
    case 4:
      return utf8(r.pick(IDS)());
    case 5:
      return r.pick(URLS);
    case 6:
      return r.pick(JSON_TEXTS);
    case 7:
      return r.pick(NAMES);
    case 8:
      return r.bytes(r.int(64));
    case 9:
      return utf8(r.pick(["", " ", "a".repeat(256), "x".repeat(65_536), "=", "%"]));
    case 10:
      // Base64 of junk: a page token's shape.
      return utf8(r.bytes(r.int(200)).toString(r.chance(0.5) ? "base64" : "base64url"));
    default:
      return Buffer.alloc(1024 * 1024 + r.int(1024), "x");
  }
}

/** Integers at and past every boundary an int32, uint32 or int64 field has. */
export function hostileInteger(r: Random): bigint {
  return r.pick([
    0n,
    1n,
    -1n,
    2n ** 31n - 1n,
    -(2n ** 31n),
    2n ** 31n,
    2n ** 32n,
    2n ** 53n + 1n,
    2n ** 63n - 1n,
    -(2n ** 63n),
    2n ** 64n - 1n,
    BigInt(r.int(1_000_000)),
    -BigInt(r.int(1_000_000)),
    86_401n,
    100_001n,
  ]);
}

export function hostileDouble(r: Random): number {
  return r.pick([Number.NaN, Infinity, -Infinity, -0, 1e308, 5e-324, -1, 2 ** 53 + 1]);
}

/** google.protobuf.Timestamp seconds and nanos, in range and far out of it. */
export function hostileTimestamp(r: Random): { seconds: bigint; nanos: bigint } {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return {
    seconds: r.pick([-62_135_596_801n, -62_135_596_800n, -1n, 0n, 253_402_300_800n, 2n ** 62n, now, now + 3600n]),
    nanos: r.pick([0n, -1n, 999_999_999n, 1_000_000_000n, 2n ** 31n - 1n]),
  };
}
