import { status, type Server, type ServerDuplexStream } from "@grpc/grpc-js";
import { grpcReflectionV1, grpcReflectionV1alpha } from "@httpqueue/proto";
import type { DescriptorIndex, IndexedFile } from "./descriptor-index.js";
import { toServiceError } from "./errors.js";
import { guardedService, requestProblem } from "./request-guard.js";

type Request = grpcReflectionV1.ServerReflectionRequest;
type Response = grpcReflectionV1.ServerReflectionResponse;
type Answer = NonNullable<Response["messageResponse"]>;

export const REFLECTION_SERVICE_NAMES = [
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
] as const;

export interface Reflection {
  /** Ends the open reflection streams, which would otherwise hold a graceful shutdown until its timeout. */
  endStreams(): void;
}

/**
 * Serves grpc.reflection.v1 and v1alpha (same messages, two paths) from the
 * descriptor set that codegen writes, so that grpcurl-style clients can list
 * the services and call them without the .proto files. `services` are the
 * ones this server offers; each must be in the descriptor set. Like health,
 * reflection is a service of its own and needs no API token.
 */
export function addReflectionService(server: Server, index: DescriptorIndex, services: readonly string[]): Reflection {
  const missing = services.filter((name) => !index.services.has(name));
  if (missing.length > 0) throw new Error(`the descriptor set lacks the services ${missing.join(", ")}`);
  const listed = [...services].sort().map((name) => ({ name }));
  const open = new Set<ServerDuplexStream<Request, Response>>();

  const serverReflectionInfo = (call: ServerDuplexStream<Request, Response>) => {
    open.add(call);
    // Like grpc-go: a file's dependencies are sent once per stream, the file asked for every time.
    const sent = new Set<string>();
    call.on("data", (request: Request) => {
      if (call.cancelled || call.writableEnded) return;
      // A message that could not be decoded ends the stream with INVALID_ARGUMENT, as the API answers.
      const problem = requestProblem(request);
      if (problem !== undefined) {
        call.emit("error", toServiceError(problem).error);
        return;
      }
      call.write({
        validHost: request.host,
        originalRequest: request,
        messageResponse: answer(request, index, listed, sent),
      });
    });
    call.on("end", () => {
      open.delete(call);
      call.end();
    });
    call.on("cancelled", () => open.delete(call));
    call.on("error", () => open.delete(call));
  };

  server.addService(guardedService(grpcReflectionV1.ServerReflectionService), { serverReflectionInfo });
  // v1alpha's messages are v1's under another package: same fields, same numbers.
  server.addService(guardedService(grpcReflectionV1alpha.ServerReflectionService), { serverReflectionInfo });

  return {
    endStreams() {
      for (const call of open) if (!call.cancelled) call.end();
      open.clear();
    },
  };
}

function answer(request: Request, index: DescriptorIndex, services: { name: string }[], sent: Set<string>): Answer {
  const req = request.messageRequest;
  switch (req?.$case) {
    case "listServices":
      return { $case: "listServicesResponse", value: { service: services } };
    case "fileByFilename":
      return files(index, index.files.get(req.value), sent, `file not found: ${req.value}`);
    case "fileContainingSymbol": {
      const symbol = req.value.replace(/^\./, "");
      return files(index, index.symbols.get(symbol), sent, `symbol not found: ${symbol}`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = req.value;
      const type = containingType.replace(/^\./, "");
      return files(
        index,
        index.extensions.get(type)?.get(extensionNumber),
        sent,
        `extension not found: ${type} ${extensionNumber}`,
      );
    }
    case "allExtensionNumbersOfType": {
      const type = req.value.replace(/^\./, "");
      if (!index.messages.has(type)) return error(status.NOT_FOUND, `type not found: ${type}`);
      const numbers = [...(index.extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
      return { $case: "allExtensionNumbersResponse", value: { baseTypeName: type, extensionNumber: numbers } };
    }
    case undefined:
      return error(status.INVALID_ARGUMENT, "the request sets no message_request");
  }
}

/** The file, then those of its transitive dependencies not yet sent on this stream. */
function files(index: DescriptorIndex, file: IndexedFile | undefined, sent: Set<string>, notFound: string): Answer {
  if (!file) return error(status.NOT_FOUND, notFound);
  const out = [file.bytes];
  sent.add(file.name);
  const queue = [...file.dependencies];
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    if (sent.has(name)) continue;
    const dependency = index.files.get(name);
    if (!dependency) continue;
    sent.add(name);
    out.push(dependency.bytes);
    queue.push(...dependency.dependencies);
  }
  return { $case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
}

function error(code: status, message: string): Answer {
  return { $case: "errorResponse", value: { errorCode: code, errorMessage: message } };
}
