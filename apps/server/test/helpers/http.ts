export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** GET http://<address><path>. */
export async function httpGet(address: string, path: string): Promise<HttpAnswer> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", body: await res.text() };
}

/** /readyz, parsed. */
export async function readyz(address: string) {
  const { status, body } = await httpGet(address, "/readyz");
  return {
    status,
    body: JSON.parse(body) as {
      status: string;
      checks: Record<"database" | "migrations" | "worker", { ok: boolean; reason?: string }>;
    },
  };
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = value!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Scrapes /metrics; `value(name, labels)` is the sample with exactly those labels, or undefined. */
export async function scrape(address: string) {
  const { status, contentType, body } = await httpGet(address, "/metrics");
  if (status !== 200) throw new Error(`/metrics answered ${status}: ${body}`);
  const samples = parseMetrics(body);
  const value = (name: string, labels: Record<string, string> = {}) => {
    const keys = Object.keys(labels);
    return samples.find(
      (s) =>
        s.name === name && Object.keys(s.labels).length === keys.length && keys.every((k) => s.labels[k] === labels[k]),
    )?.value;
  };
  return { text: body, contentType, samples, value };
}

export { freePort } from "@httpqueue/testkit";
