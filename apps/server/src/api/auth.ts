import { createHash, timingSafeEqual } from "node:crypto";
import { ServerInterceptingCall, status, type Metadata, type ServerInterceptor } from "@grpc/grpc-js";
import type { Logger } from "../observability/logger.js";

/** Services anyone may call: probes and tooling must work without a token. */
const PUBLIC_SERVICES = [
  "/grpc.health.v1.Health/",
  "/grpc.reflection.v1.ServerReflection/",
  "/grpc.reflection.v1alpha.ServerReflection/",
];

/**
 * Requires `authorization: Bearer <token>` with one of `tokens` on every call
 * except those to the public services: deny by default, so a service added
 * later is protected too. Tokens are compared in constant time (as SHA-256
 * digests, so their lengths leak nothing either) and never logged.
 */
export function createAuthInterceptor(
  tokens: readonly string[],
  logger: Logger,
  /** Told of every refused call, by its full method path ("/package.Service/Method"). */
  onRefused: (path: string) => void = () => undefined,
): ServerInterceptor {
  const digests = tokens.map(digest);
  const log = logger.child({ component: "api" });

  function check(metadata: Metadata): string | undefined {
    const values = metadata.get("authorization");
    const header = values.length === 1 ? values[0] : undefined;
    if (typeof header !== "string") return "missing credentials: send the header 'authorization: Bearer <token>'";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) return "malformed authorization header: expected 'Bearer <token>'";
    const presented = digest(match[1]);
    // Every token is compared, whichever matches.
    let valid = false;
    for (const known of digests) valid = timingSafeEqual(presented, known) || valid;
    return valid ? undefined : "invalid API token";
  }

  return (methodDescriptor, call) => {
    if (PUBLIC_SERVICES.some((prefix) => methodDescriptor.path.startsWith(prefix))) {
      return new ServerInterceptingCall(call);
    }
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, nextMetadata) {
            const problem = check(metadata);
            if (problem === undefined) {
              nextMetadata(metadata);
              return;
            }
            log.info({ rpc: methodDescriptor.path, code: "UNAUTHENTICATED", peer: call.getPeer() }, "rpc refused");
            onRefused(methodDescriptor.path);
            call.sendStatus({ code: status.UNAUTHENTICATED, details: problem });
          },
        });
      },
    });
  };
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}
