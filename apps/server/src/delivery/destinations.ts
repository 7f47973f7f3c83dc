import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

/**
 * Which addresses deliveries may connect to. By default only public unicast
 * addresses: a webhook URL is chosen by whoever may call the API, and must not
 * become a way into the network the server sits in (SSRF).
 */
export interface DestinationPolicy {
  /** ALLOW_PRIVATE_DESTINATIONS: every address is allowed. */
  allowPrivate: boolean;
  /** DESTINATION_ALLOWLIST: networks allowed although not public. */
  allowlist: readonly Cidr[];
}

export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** A delivery refused before connecting. Not retried: the same address would be refused again. */
export class DestinationBlockedError extends Error {
  override name = "DestinationBlockedError";
}

const RANGE_NAMES: Record<string, string> = {
  loopback: "a loopback address",
  private: "a private network address",
  linkLocal: "a link-local address (where cloud metadata services live)",
  carrierGradeNat: "a carrier-grade NAT address",
  uniqueLocal: "an IPv6 unique local address",
  unspecified: "the unspecified address",
  multicast: "a multicast address",
  broadcast: "the broadcast address",
  reserved: "a reserved address",
};

/**
 * Parses an address (IPv4 in any form the WHATWG URL parser leaves, or IPv6,
 * with or without brackets) and unwraps IPv4-mapped IPv6 addresses, so that
 * `::ffff:127.0.0.1` is judged as 127.0.0.1.
 */
export function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  return ipaddr.process(bare.split("%")[0] ?? bare);
}

/**
 * Why `address` may not be reached, or undefined when it may: public unicast
 * addresses always, others only when the policy allows them.
 */
export function blockedReason(policy: DestinationPolicy, address: string): string | undefined {
  const ip = parseAddress(address);
  const range = ip.range();
  if (range === "unicast" || policy.allowPrivate) return undefined;
  if (policy.allowlist.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits))) return undefined;
  return RANGE_NAMES[range] ?? `a special-purpose address (${range})`;
}

/**
 * The addresses to connect to for `host`, in order: the host itself when it is
 * an IP address, else what DNS answers. Throws DestinationBlockedError when
 * any of them is not allowed (a name that also points inside is refused as a
 * whole). The caller connects to these very addresses, so a second DNS answer
 * cannot differ from the one checked.
 */
export async function resolveDestination(policy: DestinationPolicy, host: string): Promise<string[]> {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const addresses = isIP(bare) ? [bare] : (await lookup(bare, { all: true })).map((a) => a.address);
  if (addresses.length === 0) throw new Error(`no address found for ${bare}`);
  for (const address of addresses) {
    const reason = blockedReason(policy, address);
    if (reason !== undefined) throw new DestinationBlockedError(blockedMessage(bare, address, reason));
  }
  return addresses;
}

function blockedMessage(host: string, address: string, reason: string): string {
  const ip = parseAddress(address);
  const where = host === address ? address : `${address} (the address of ${host})`;
  const single = ip.kind() === "ipv4" ? "32" : "128";
  return (
    `delivery refused: ${where} is ${reason}, which deliveries may not reach; ` +
    `to allow it, set DESTINATION_ALLOWLIST=${ip.toString()}/${single} (or a network containing it), ` +
    `or ALLOW_PRIVATE_DESTINATIONS=true`
  );
}

/** Parses DESTINATION_ALLOWLIST entries: CIDRs, or single addresses. */
export function parseCidr(text: string): Cidr {
  const entry = text.trim();
  if (ipaddr.isValidCIDR(entry)) return ipaddr.parseCIDR(entry);
  const ip = parseAddress(entry);
  return [ip, ip.kind() === "ipv4" ? 32 : 128];
}

const WARNING_LOOKUP_MS = 1000;

/**
 * A warning when deliveries to `url` would be refused as things stand (its
 * address, or what its name resolves to now, is not allowed); undefined when
 * they would go out, or when the name does not resolve quickly.
 */
export async function destinationWarning(policy: DestinationPolicy, url: string): Promise<string | undefined> {
  const timeout = new Promise<undefined>((resolve) => {
    setTimeout(() => {
      resolve(undefined);
    }, WARNING_LOOKUP_MS).unref();
  });
  const check = resolveDestination(policy, new URL(url).hostname).then(
    () => undefined,
    (err: unknown) => (err instanceof DestinationBlockedError ? err.message : undefined),
  );
  return Promise.race([check, timeout]);
}
