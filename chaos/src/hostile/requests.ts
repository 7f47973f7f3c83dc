// Hostile requests for every RPC of the API, built from the API's own
// descriptors: each RPC's fields, with their types, come from the
// FileDescriptorSet the build writes, so RPCs added later are covered too.
import { randomBytes, randomUUID } from "node:crypto";
import { createFileRegistry, fromBinary, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { loadDescriptorSet, WebhookServiceService } from "@httpqueue/proto";
import type { Random } from "../random.js";
import { hostileDouble, hostileInteger, hostileString, hostileTimestamp } from "./values.js";
import {
  doubleBytes,
  fixed32Field,
  fixed64Field,
  lengthDelimited,
  MAX_FIELD_NUMBER,
  tag,
  varint,
  varintField,
  WireType,
} from "./wire.js";

export interface RpcTarget {
  /** "RegisterWebhook"… */
  name: string;
  /** "/httpqueue.v1.WebhookService/RegisterWebhook" */
  path: string;
  responseStream: boolean;
  /** The request message's descriptor; undefined if the descriptor set does not know the RPC. */
  input: DescMessage | undefined;
}

/** Every RPC of WebhookService, from the generated service definition. */
export function rpcTargets(): RpcTarget[] {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, loadDescriptorSet()));
  const service = registry.getService("httpqueue.v1.WebhookService");
  return Object.values(WebhookServiceService).map((def) => {
    const name = def.path.slice(def.path.lastIndexOf("/") + 1);
    return {
      name,
      path: def.path,
      responseStream: def.responseStream,
      input: service?.methods.find((m) => m.name === name)?.input,
    };
  });
}

/** Objects that exist on the server, so that some requests get past "not found". */
export interface Known {
  webhookIds: string[];
  eventIds: string[];
  deliveryIds: string[];
}

export const KINDS = [
  "one field hostile",
  "every field hostile",
  "wrong wire types",
  "random bytes",
  "mutated bytes",
  "deep nesting",
  "1 MiB string",
  "over 4 MiB",
] as const;
export type Kind = (typeof KINDS)[number];

/** Chances of each kind, in KINDS' order (the huge ones rare: they cost the machine). */
const WEIGHTS = [60, 26, 24, 30, 30, 20, 4, 1];

export function hostileRequest(target: RpcTarget, r: Random, known: Known): { kind: Kind; bytes: Buffer } {
  let roll = r.int(WEIGHTS.reduce((a, b) => a + b, 0));
  let index = 0;
  while (roll >= (WEIGHTS[index] ?? 0)) roll -= WEIGHTS[index++] ?? 0;
  const kind = KINDS[index] ?? "random bytes";
  const input = target.input;
  if (!input) return { kind: "random bytes", bytes: r.bytes(r.int(2048)) };
  const fields = input.fields;
  const anyField = () => r.pick(fields);
  switch (kind) {
    case "one field hostile": {
      const extra = Array.from({ length: 1 + r.int(2) }, () => hostileField(anyField(), r, false, 0));
      return { kind, bytes: Buffer.concat([plausibleMessage(input, r, known, 0), ...extra]) };
    }
    case "every field hostile":
      return { kind, bytes: Buffer.concat(fields.map((f) => hostileField(f, r, false, 0))) };
    case "wrong wire types": {
      const wrong = Array.from({ length: 1 + r.int(3) }, () => wrongWireType(anyField(), r));
      return { kind, bytes: Buffer.concat(r.chance(0.5) ? [plausibleMessage(input, r, known, 0), ...wrong] : wrong) };
    }
    case "random bytes":
      return { kind, bytes: r.bytes(1 + r.int(r.chance(0.9) ? 256 : 8192)) };
    case "mutated bytes":
      return { kind, bytes: mutate(plausibleMessage(input, r, known, 0), r) };
    case "deep nesting":
      return { kind, bytes: deepNesting(input, r) };
    case "1 MiB string":
    case "over 4 MiB": {
      const strings = fields.filter((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);
      const field = strings.length > 0 ? r.pick(strings).number : 1;
      const size = kind === "1 MiB string" ? 1024 * 1024 : 4.5 * 1024 * 1024;
      return {
        kind,
        bytes: Buffer.concat([plausibleMessage(input, r, known, 0), lengthDelimited(field, Buffer.alloc(size, "x"))]),
      };
    }
  }
}

const isTimestamp = (m: DescMessage) => m.typeName === "google.protobuf.Timestamp";

function timestamp(seconds: bigint, nanos: bigint): Buffer {
  return Buffer.concat([varintField(1, seconds), varintField(2, nanos)]);
}

/** A value the RPC would take, by the field's name and type: real ids half the time. */
function plausibleMessage(message: DescMessage, r: Random, known: Known, depth: number): Buffer {
  if (isTimestamp(message)) return timestamp(BigInt(Math.floor(Date.now() / 1000) - 3600), 0n);
  const parts: Buffer[] = [];
  const oneofsDone = new Set<string>();
  for (const field of message.fields) {
    if (field.oneof) {
      if (oneofsDone.has(field.oneof.name) || r.chance(0.5)) continue;
      oneofsDone.add(field.oneof.name);
    }
    if (depth > 2 || r.chance(0.2)) continue;
    parts.push(plausibleField(field, r, known, depth));
  }
  return Buffer.concat(parts);
}

function plausibleString(name: string, r: Random, known: Known): string {
  const real = (ids: string[]) => (ids.length > 0 && r.chance(0.5) ? r.pick(ids) : randomUUID());
  if (name === "webhook_id") return real(known.webhookIds);
  if (name === "event_id") return real(known.eventIds);
  if (name === "delivery_id") return real(known.deliveryIds);
  if (name.endsWith("_id")) return randomUUID();
  // A thousand namespaces: registrations and pushes seldom meet, so little gets delivered.
  if (name === "namespace") return `chaos-${r.int(1000)}`;
  if (name === "event") return r.pick(["e", "*", "order.*"]);
  if (name === "url") return "http://127.0.0.1:1/hostile";
  if (name === "method") return "POST";
  if (name === "payload") return '{"n":1}';
  if (name === "filter") return r.pick(["", '{"n":1}']);
  if (name === "idempotency_key") return randomBytes(8).toString("hex");
  if (name === "page_token") return "";
  return "chaos";
}

function plausibleNumber(name: string): number {
  if (name === "page_size") return 10;
  if (name.includes("timeout")) return 5;
  if (name.includes("ttl")) return 60;
  if (name === "max_attempts") return 3;
  if (name.includes("rate") || name.includes("in_flight")) return 0;
  return 1;
}

function plausibleField(field: DescField, r: Random, known: Known, depth: number): Buffer {
  const n = field.number;
  switch (field.fieldKind) {
    case "scalar":
      if (field.scalar === ScalarType.STRING)
        return lengthDelimited(n, Buffer.from(plausibleString(field.name, r, known)));
      if (field.scalar === ScalarType.BYTES) return lengthDelimited(n, r.bytes(8));
      if (field.scalar === ScalarType.BOOL) return varintField(n, 1);
      if (field.scalar === ScalarType.DOUBLE) return fixed64Field(n, doubleBytes(1));
      if (field.scalar === ScalarType.FLOAT) return fixed32Field(n, Buffer.from([0, 0, 0x80, 0x3f]));
      return varintField(n, plausibleNumber(field.name));
    case "enum":
      return varintField(n, r.int(2));
    case "message":
      return lengthDelimited(n, plausibleMessage(field.message, r, known, depth + 1));
    case "list":
      if (field.listKind === "message") return lengthDelimited(n, plausibleMessage(field.message, r, known, depth + 1));
      if (field.listKind === "scalar" && field.scalar === ScalarType.STRING)
        return lengthDelimited(n, Buffer.from("chaos"));
      return lengthDelimited(n, varint(1));
    case "map":
      return lengthDelimited(
        n,
        Buffer.concat([lengthDelimited(1, Buffer.from("X-Chaos")), lengthDelimited(2, Buffer.from("1"))]),
      );
  }
}

/** The field with a hostile value of its own type (its wire type right, its content not). */
function hostileField(field: DescField, r: Random, huge: boolean, depth: number): Buffer {
  const n = field.number;
  const scalar = (type: ScalarType | undefined): Buffer => {
    switch (type) {
      case ScalarType.STRING:
      case ScalarType.BYTES:
        return lengthDelimited(n, hostileString(r, huge));
      case ScalarType.DOUBLE:
        return fixed64Field(n, doubleBytes(hostileDouble(r)));
      case ScalarType.FLOAT:
      case ScalarType.FIXED32:
      case ScalarType.SFIXED32:
        return fixed32Field(n, r.bytes(4));
      case ScalarType.FIXED64:
      case ScalarType.SFIXED64:
        return fixed64Field(n, r.bytes(8));
      case ScalarType.BOOL:
        return varintField(n, r.pick([0n, 1n, 2n, 2n ** 64n - 1n]));
      default:
        return varintField(n, hostileInteger(r));
    }
  };
  switch (field.fieldKind) {
    case "scalar":
      return scalar(field.scalar);
    case "enum":
      return varintField(n, r.pick([0n, 1n, 2n, 7n, 99n, -1n, 2n ** 31n - 1n]));
    case "message": {
      if (isTimestamp(field.message)) {
        const { seconds, nanos } = hostileTimestamp(r);
        return lengthDelimited(n, timestamp(seconds, nanos));
      }
      if (depth > 2 || r.chance(0.2)) return lengthDelimited(n, r.bytes(r.int(32)));
      return lengthDelimited(n, Buffer.concat(field.message.fields.map((f) => hostileField(f, r, false, depth + 1))));
    }
    case "list": {
      const many = r.pick([1, 2, 10, 1000, 20_000]);
      if (field.listKind === "scalar" && field.scalar !== ScalarType.STRING && field.scalar !== ScalarType.BYTES) {
        // Packed, as proto3 writes repeated numbers.
        return lengthDelimited(n, Buffer.concat(Array.from({ length: many }, () => varint(hostileInteger(r)))));
      }
      const one = () =>
        field.listKind === "message"
          ? lengthDelimited(n, r.bytes(r.int(16)))
          : lengthDelimited(n, hostileString(r, false).subarray(0, 256));
      return Buffer.concat(Array.from({ length: Math.min(many, 2000) }, one));
    }
    case "map": {
      const entries = r.pick([1, 3, 100, 5000]);
      const entry = () => {
        const parts = [];
        // Many entries, each short: the message stays within a few hundred KiB.
        const text = () => hostileString(r, false).subarray(0, entries > 100 ? 64 : 65_536);
        if (r.chance(0.9)) parts.push(lengthDelimited(1, text()));
        if (r.chance(0.9)) parts.push(lengthDelimited(2, text()));
        return lengthDelimited(n, Buffer.concat(parts));
      };
      return Buffer.concat(Array.from({ length: entries }, entry));
    }
  }
}

/** The field written with a wire type its type does not have, or a key that cannot be. */
function wrongWireType(field: DescField, r: Random): Buffer {
  const n = field.number;
  switch (r.int(8)) {
    case 0:
      // A length-delimited field as a varint, a number as bytes: whichever it is not.
      return field.fieldKind === "scalar" && field.scalar !== ScalarType.STRING
        ? lengthDelimited(n, r.bytes(r.int(16)))
        : varintField(n, hostileInteger(r));
    case 1:
      return fixed32Field(n, r.bytes(4));
    case 2:
      return fixed64Field(n, r.bytes(8));
    case 3:
      // A group that never ends.
      return Buffer.concat([tag(n, WireType.startGroup), varintField(1, 1)]);
    case 4:
      // An end of group with no start.
      return tag(n, WireType.endGroup);
    case 5:
      // Wire types 6 and 7 do not exist.
      return Buffer.concat([tag(n, 6 + r.int(2)), r.bytes(4)]);
    case 6:
      // Field number 0, and the largest one.
      return r.chance(0.5) ? varintField(0, 1) : varintField(MAX_FIELD_NUMBER, 1);
    default:
      // A length that runs past the end of the message.
      return Buffer.concat([tag(n, WireType.bytes), varint(1_000_000 + r.int(1000)), r.bytes(8)]);
  }
}

/** Bytes flipped, cut, inserted: a message almost right. */
function mutate(bytes: Buffer, r: Random): Buffer {
  let out = Buffer.from(bytes);
  for (let i = 1 + r.int(4); i > 0; i--) {
    const at = out.length === 0 ? 0 : r.int(out.length);
    switch (r.int(4)) {
      case 0:
        if (out.length > 0) out[at] = r.int(256);
        break;
      case 1:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + r.int(8))]);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), r.bytes(1 + r.int(8)), out.subarray(at)]);
        break;
      default:
        out = out.subarray(0, at);
    }
  }
  return out;
}

/** Groups or messages nested hundreds to tens of thousands deep, in a known field or an unknown one. */
function deepNesting(message: DescMessage, r: Random): Buffer {
  const depth = r.pick([64, 100, 101, 1000, 10_000]);
  const messageFields = message.fields.filter((f) => f.fieldKind === "message");
  const field = messageFields.length > 0 && r.chance(0.5) ? r.pick(messageFields).number : 999;
  if (r.chance(0.5)) {
    // Balanced groups: a decoder that skips them recursively goes `depth` calls deep.
    return Buffer.concat([
      Buffer.concat(Array.from({ length: depth }, () => tag(field, WireType.startGroup))),
      Buffer.concat(Array.from({ length: depth }, () => tag(field, WireType.endGroup))),
    ]);
  }
  // Built from the inside out: each level's header knows the length of all it wraps.
  const innermost = varintField(1, 1);
  const headers: Buffer[] = [];
  let length = innermost.length;
  for (let i = 0; i < depth; i++) {
    const header = Buffer.concat([tag(r.chance(0.5) ? field : 1, WireType.bytes), varint(length)]);
    headers.push(header);
    length += header.length;
  }
  return Buffer.concat([...headers.reverse(), innermost]);
}
