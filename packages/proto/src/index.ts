import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export * from "./gen/httpqueue/v1/webhook.js";
export { parseDuration } from "./duration.js";
export { findField, hasLoneSurrogate, toWellFormed } from "./fields.js";
// The standard gRPC services the server also offers. Namespaced: their
// generated modules share helper names (DeepPartial, MessageFns, ...).
export * as grpcHealthV1 from "./gen/grpc/health/v1/health.js";
export * as grpcReflectionV1 from "./gen/grpc/reflection/v1/reflection.js";
export * as grpcReflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection.js";

/**
 * The FileDescriptorSet that `buf build` writes from proto/: every file of the
 * API and of the standard services, with their imports. The build copies it
 * next to this module, so the path is the same in the package and in dist.
 */
export const DESCRIPTOR_SET_PATH = fileURLToPath(new URL("./gen/httpqueue.binpb", import.meta.url));

/** The serialized FileDescriptorSet (google.protobuf.FileDescriptorSet). */
export function loadDescriptorSet(): Uint8Array {
  return readFileSync(DESCRIPTOR_SET_PATH);
}
