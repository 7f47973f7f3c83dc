// Protocol buffers' wire format, written by hand so that anything can be
// written: wrong wire types, 10-byte varints, unbalanced groups, lengths
// that lie.

export const WireType = {
  varint: 0,
  fixed64: 1,
  bytes: 2,
  startGroup: 3,
  endGroup: 4,
  fixed32: 5,
} as const;

const MASK64 = (1n << 64n) - 1n;

/** A varint of any value; negative numbers as two's complement over 64 bits (10 bytes), as int64 is written. */
export function varint(value: bigint | number): Buffer {
  let v = BigInt(value) & MASK64;
  const out: number[] = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
  return Buffer.from(out);
}

/** A field's key: its number and wire type (any of 0–7, the invalid 6 and 7 included). */
export function tag(field: number, wireType: number): Buffer {
  return varint((BigInt(field) << 3n) | BigInt(wireType & 7));
}

export function lengthDelimited(field: number, payload: Buffer): Buffer {
  return Buffer.concat([tag(field, WireType.bytes), varint(payload.length), payload]);
}

export function varintField(field: number, value: bigint | number): Buffer {
  return Buffer.concat([tag(field, WireType.varint), varint(value)]);
}

export function fixed64Field(field: number, bytes: Buffer): Buffer {
  return Buffer.concat([tag(field, WireType.fixed64), bytes.subarray(0, 8)]);
}

export function fixed32Field(field: number, bytes: Buffer): Buffer {
  return Buffer.concat([tag(field, WireType.fixed32), bytes.subarray(0, 4)]);
}

export function doubleBytes(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(value);
  return b;
}

/** The field numbers' range: 1 to 2^29 - 1 (0 and 19000–19999 are reserved, which is the point of trying them). */
export const MAX_FIELD_NUMBER = 2 ** 29 - 1;
