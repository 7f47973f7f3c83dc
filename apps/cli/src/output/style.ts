import pc from "picocolors";
import { DeliveryStatus, deliveryStatusToJSON, type DeliveryCount } from "@httpqueue/sdk";

export type Colors = ReturnType<typeof pc.createColors>;

/**
 * Colour only on a terminal, never with NO_COLOR (https://no-color.org) or
 * TERM=dumb; FORCE_COLOR turns it on anywhere.
 */
export function colorsFor(stream: { isTTY?: boolean | undefined }, env: NodeJS.ProcessEnv): Colors {
  const force = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0" && env.FORCE_COLOR !== "false";
  const enabled =
    (env.NO_COLOR === undefined || env.NO_COLOR === "") && (force || (stream.isTTY === true && env.TERM !== "dumb"));
  return pc.createColors(enabled);
}

/** "SUCCEEDED" for DELIVERY_STATUS_SUCCEEDED. */
export function statusName(status: DeliveryStatus): string {
  return deliveryStatusToJSON(status).replace(/^DELIVERY_STATUS_/, "");
}

export function colorStatus(c: Colors, status: DeliveryStatus): string {
  const name = statusName(status);
  switch (status) {
    case DeliveryStatus.DELIVERY_STATUS_SUCCEEDED:
      return c.green(name);
    case DeliveryStatus.DELIVERY_STATUS_FAILED:
      return c.red(name);
    case DeliveryStatus.DELIVERY_STATUS_RETRYING:
      return c.yellow(name);
    case DeliveryStatus.DELIVERY_STATUS_PENDING:
      return c.cyan(name);
    default:
      return c.dim(name);
  }
}

/** "3m ago (2026-11-28 12:00:01Z)", "in 20s (...)"; "-" when absent. */
export function formatTime(date: Date | undefined, now = Date.now()): string {
  if (!date) return "-";
  const absolute = date
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d{3}Z$/, "Z");
  return `${relative(date.getTime() - now)} (${absolute})`;
}

function relative(diffMs: number): string {
  const seconds = Math.round(Math.abs(diffMs) / 1000);
  if (seconds < 1) return "just now";
  const units: [number, string][] = [
    [86_400, "d"],
    [3600, "h"],
    [60, "m"],
    [1, "s"],
  ];
  const [size, unit] = units.find(([s]) => seconds >= s) ?? [1, "s"];
  const amount = `${Math.round(seconds / size)}${unit}`;
  return diffMs < 0 ? `${amount} ago` : `in ${amount}`;
}

/** Long text on one line, cut to `max` characters. */
export function oneLine(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** JSON text on one line without spaces (a webhook's filter, whatever layout the server keeps it in). */
export function compactJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text;
  }
}

/** "3 SUCCEEDED, 1 FAILED"; "none" when there are none. */
export function formatCounts(c: Colors, counts: DeliveryCount[]): string {
  if (counts.length === 0) return "none";
  return counts.map((n) => `${n.count} ${colorStatus(c, n.status)}`).join(", ");
}

/** "35ms", "1.2s", "2m 5s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, "")}s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
}

/** A response code in the colour of what it meant (2xx green, else red), "-" for none; padded to `width`. */
export function colorCode(c: Colors, code: number, width = 0): string {
  const text = (code === 0 ? "-" : String(code)).padStart(width);
  return code >= 200 && code < 300 ? c.green(text) : c.red(text);
}
