import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { parseAddress, type DestinationPolicy } from "../addresses.js";

/** A delivery refused before connecting. Not retried: the same address would be refused again. */
export class DestinationBlockedError extends Error {
  override name = "DestinationBlockedError";
  constructor(
    /** Which address is refused, why, and the setting that would allow it, without a lead-in. */
    readonly reason: string,
  ) {
    super(`delivery refused: ${reason}`);
  }
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
    `${where} is ${reason}, which deliveries may not reach; ` +
    `to allow it, set DESTINATION_ALLOWLIST=${ip.toString()}/${single} (or a network containing it), ` +
    `or ALLOW_PRIVATE_DESTINATIONS=true`
  );
}

const WARNING_LOOKUP_MS = 1000;

/**
 * Why deliveries to `url` would be refused as things stand (its address, or
 * what its name resolves to now, is not allowed: DestinationBlockedError's
 * reason); undefined when they would go out, or when the name does not
 * resolve quickly.
 */
export async function destinationWarning(policy: DestinationPolicy, url: string): Promise<string | undefined> {
  const timeout = new Promise<undefined>((resolve) => {
    setTimeout(() => {
      resolve(undefined);
    }, WARNING_LOOKUP_MS).unref();
  });
  const check = resolveDestination(policy, new URL(url).hostname).then(
    () => undefined,
    (err: unknown) => (err instanceof DestinationBlockedError ? err.reason : undefined),
  );
  return Promise.race([check, timeout]);
}
