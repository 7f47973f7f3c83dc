import { isIP } from "node:net";
import type { Config } from "../config.js";
import { parseAddress } from "../addresses.js";

export interface SecurityWarning {
  /** "error" when the server is reachable from other machines: it should stand out. */
  level: "warn" | "error";
  message: string;
}

function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  return isIP(host) !== 0 && parseAddress(host).range() === "loopback";
}

/** What an operator should know at start about how exposed this server is. */
export function securityWarnings(
  config: Pick<
    Config,
    "apiTokens" | "apiTokensFile" | "metricsToken" | "tls" | "grpcHost" | "httpHost" | "destinations" | "secretsKeys"
  >,
  address: string,
  /** host:port of /metrics; HTTP_HOST when not given. */
  httpAddress: string = config.httpHost,
): SecurityWarning[] {
  const beyondLoopback = !isLoopbackHost(config.grpcHost);
  const warnings: SecurityWarning[] = [];
  if (config.apiTokens.length === 0 && !config.apiTokensFile) {
    warnings.push({
      level: beyondLoopback ? "error" : "warn",
      message: beyondLoopback
        ? `API authentication is OFF and gRPC listens on ${address}, beyond this machine: anyone who can reach it can register webhooks and push events. Set API_TOKENS or API_TOKENS_FILE.`
        : `API authentication is off (no API_TOKENS or API_TOKENS_FILE): any process on this machine can call the API on ${address}.`,
    });
  } else if (config.apiTokens.length === 0 && config.apiTokensFile?.tokens.length === 0) {
    warnings.push({
      level: "warn",
      message: `API_TOKENS_FILE (${config.apiTokensFile.path}) holds no tokens and API_TOKENS is empty: every API call is refused until tokens are added to the file (it is read again when it changes, and on SIGHUP).`,
    });
  }
  if (!config.tls && beyondLoopback) {
    warnings.push({
      level: "warn",
      message: `gRPC on ${address} is not encrypted: set TLS_CERT_FILE and TLS_KEY_FILE, or terminate TLS in front of it.`,
    });
  }
  if (config.metricsToken === undefined && !isLoopbackHost(config.httpHost)) {
    warnings.push({
      level: "warn",
      message: `/metrics on ${httpAddress} is open beyond this machine: whoever reaches it reads the server's metrics (event names, counts). Set METRICS_TOKEN, or keep HTTP_HOST on loopback.`,
    });
  }
  if (config.secretsKeys === undefined) {
    // Not refused: a development checkout and existing installations run without one; beyond loopback it stands out.
    warnings.push({
      level: beyondLoopback ? "error" : "warn",
      message:
        "Signing secrets are stored in plaintext (no SECRETS_KEY): whoever reads the database or a backup of it can sign deliveries as this server. Set SECRETS_KEY or SECRETS_KEY_FILE (openssl rand -base64 32); the next start seals them.",
    });
  }
  if (config.destinations.allowPrivate) {
    warnings.push({
      level: "warn",
      message:
        "ALLOW_PRIVATE_DESTINATIONS=true: deliveries may reach loopback, private and link-local addresses (for development; in production, allow chosen networks with DESTINATION_ALLOWLIST).",
    });
  }
  return warnings;
}
