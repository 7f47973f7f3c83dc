import { ServerInterceptingCall, status, type Metadata, type ServerInterceptor } from "@grpc/grpc-js";
import type { Logger } from "../observability/logger.js";
import { bearerToken, type TokenSet } from "../tokens.js";

/** Services anyone may call: probes and tooling must work without a token. */
const PUBLIC_SERVICES = [
  "/grpc.health.v1.Health/",
  "/grpc.reflection.v1.ServerReflection/",
  "/grpc.reflection.v1alpha.ServerReflection/",
];

/**
 * Requires `authorization: Bearer <token>` with one of `tokens` on every call
 * except those to the public services: deny by default, so a service added
 * later is protected too. `tokens` is consulted on each call (a reload of
 * API_TOKENS_FILE replaces them; none: every call is refused). Tokens are
 * compared in constant time and never logged.
 */
export function createAuthInterceptor(
  tokens: TokenSet,
  logger: Logger,
  /** Told of every refused call, by its full method path ("/package.Service/Method"). */
  onRefused: (path: string) => void = () => undefined,
): ServerInterceptor {
  const log = logger.child({ component: "api" });

  function check(metadata: Metadata): string | undefined {
    const values = metadata.get("authorization");
    const header = values.length === 1 ? values[0] : undefined;
    if (typeof header !== "string") return "missing credentials: send the header 'authorization: Bearer <token>'";
    const presented = bearerToken(header);
    if (presented === undefined) return "malformed authorization header: expected 'Bearer <token>'";
    return tokens.has(presented) ? undefined : "invalid API token";
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
