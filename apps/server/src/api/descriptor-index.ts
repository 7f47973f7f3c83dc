import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  FileDescriptorProtoSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";

export interface IndexedFile {
  name: string;
  /** The FileDescriptorProto exactly as the descriptor set holds it. */
  bytes: Buffer;
  dependencies: string[];
}

/** What reflection answers from: files by name, and the file that declares each symbol. */
export interface DescriptorIndex {
  files: Map<string, IndexedFile>;
  /** Fully-qualified name (no leading dot) of every message, enum, enum value, field, oneof, service, method and extension. */
  symbols: Map<string, IndexedFile>;
  /** Services declared, by fully-qualified name. */
  services: Set<string>;
  /** Extensions by extended message and field number. */
  extensions: Map<string, Map<number, IndexedFile>>;
  /** Fully-qualified names of the messages, which may be extended. */
  messages: Set<string>;
}

/**
 * Indexes a serialized google.protobuf.FileDescriptorSet. Each file keeps the
 * bytes it has in the set: served as they are, they reference their imports by
 * the same names as the set, so a client can always resolve them.
 */
export function indexDescriptorSet(set: Uint8Array): DescriptorIndex {
  const index: DescriptorIndex = {
    files: new Map(),
    symbols: new Map(),
    services: new Set(),
    extensions: new Map(),
    messages: new Set(),
  };
  const reader = new BinaryReader(set);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo !== 1 || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, fieldNo);
      continue;
    }
    const bytes = Buffer.from(reader.bytes());
    const proto = fromBinary(FileDescriptorProtoSchema, bytes);
    const file: IndexedFile = { name: proto.name, bytes, dependencies: proto.dependency };
    index.files.set(file.name, file);
    addFile(index, file, proto);
  }
  return index;
}

function addFile(index: DescriptorIndex, file: IndexedFile, proto: FileDescriptorProto): void {
  const scope = proto.package;
  const name = (parent: string, child: string) => (parent ? `${parent}.${child}` : child);
  const add = (symbol: string) => index.symbols.set(symbol, file);

  const addEnum = (parent: string, e: EnumDescriptorProto) => {
    add(name(parent, e.name));
    // Enum values are scoped like their enum, not inside it (protobuf's C++ rule).
    for (const value of e.value) add(name(parent, value.name));
  };
  const addExtension = (parent: string, ext: FieldDescriptorProto) => {
    add(name(parent, ext.name));
    const extendee = ext.extendee.replace(/^\./, "");
    let numbers = index.extensions.get(extendee);
    if (!numbers) index.extensions.set(extendee, (numbers = new Map<number, IndexedFile>()));
    numbers.set(ext.number, file);
  };
  const addMessage = (parent: string, m: DescriptorProto) => {
    const full = name(parent, m.name);
    add(full);
    index.messages.add(full);
    for (const field of m.field) add(name(full, field.name));
    for (const oneof of m.oneofDecl) add(name(full, oneof.name));
    for (const nested of m.nestedType) addMessage(full, nested);
    for (const e of m.enumType) addEnum(full, e);
    for (const ext of m.extension) addExtension(full, ext);
  };

  for (const m of proto.messageType) addMessage(scope, m);
  for (const e of proto.enumType) addEnum(scope, e);
  for (const ext of proto.extension) addExtension(scope, ext);
  for (const service of proto.service) {
    const full = name(scope, service.name);
    add(full);
    index.services.add(full);
    for (const method of service.method) add(name(full, method.name));
  }
}
