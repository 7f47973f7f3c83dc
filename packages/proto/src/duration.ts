const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * The one duration grammar of httpqueue (server settings and webhookctl):
 * a number, whole or decimal, and a unit (ms, s, m, h or d), e.g. "250ms",
 * "1.5s", "2m", "24h", "7d"; or a bare "0". Surrounding whitespace is
 * ignored. Milliseconds (a decimal may give a fraction of one, "1.5ms" is
 * 1.5); undefined when the text is anything else.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "0") return 0;
  const match = DURATION.exec(trimmed);
  if (!match) return undefined;
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  return Number.isFinite(ms) ? ms : undefined;
}
