import ipaddr from "ipaddr.js";

// Addresses and networks, as the settings and the destination guard
// (delivery/destinations.ts) read them.

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

/**
 * Parses an address (IPv4 in any form the WHATWG URL parser leaves, or IPv6,
 * with or without brackets) and unwraps IPv4-mapped IPv6 addresses, so that
 * `::ffff:127.0.0.1` is judged as 127.0.0.1.
 */
export function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  return ipaddr.process(bare.split("%")[0] ?? bare);
}

/** Parses DESTINATION_ALLOWLIST entries: CIDRs, or single addresses. */
export function parseCidr(text: string): Cidr {
  const entry = text.trim();
  if (ipaddr.isValidCIDR(entry)) return ipaddr.parseCIDR(entry);
  const ip = parseAddress(entry);
  return [ip, ip.kind() === "ipv4" ? 32 : 128];
}
