import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { bearerToken, TokenSet } from "../tokens.js";
import type { Readiness } from "./health.js";
import type { Logger } from "./logger.js";

export interface HttpServerOptions {
  host: string;
  /** 0: any free port. */
  port: number;
  readiness(): Readiness;
  registry: Registry;
  /** METRICS_TOKEN: /metrics requires `Authorization: Bearer <it>`; undefined: /metrics is open. */
  metricsToken?: string | undefined;
  logger: Logger;
}

export interface HttpServer {
  /** host:port it listens on. */
  address: string;
  port: number;
  /** Stops listening; requests under way get a moment to finish. */
  close(): Promise<void>;
}

/** How long close() lets running requests (a scrape, say) finish. */
const CLOSE_GRACE_MS = 2_000;

/**
 * The operators' endpoints, on a port of their own so that they can be
 * exposed to a scraper or an orchestrator without exposing the API:
 * GET /healthz (alive), GET /readyz (ready to work), GET /metrics (Prometheus,
 * behind a bearer token when one is set; probes stay open).
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { logger } = options;
  const metricsToken = options.metricsToken === undefined ? undefined : new TokenSet([options.metricsToken]);

  const routes: Record<string, (res: ServerResponse) => Promise<void> | void> = {
    "/healthz": (res) => {
      // Alive as long as the process answers: a failing dependency is for /readyz.
      sendJson(res, 200, { status: "ok" });
    },
    "/readyz": (res) => {
      const { ready, stopping, checks } = options.readiness();
      sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : stopping ? "stopping" : "not ready", checks });
    },
    "/metrics": async (res) => {
      let body: string;
      try {
        body = await options.registry.metrics();
      } catch (err) {
        logger.error({ err }, "could not collect metrics");
        send(res, 500, "text/plain; charset=utf-8", "could not collect metrics\n");
        return;
      }
      send(res, 200, options.registry.contentType, body);
    },
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const route = routes[path];
    if (!route) {
      send(res, 404, "text/plain; charset=utf-8", "not found: try /healthz, /readyz or /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
      return;
    }
    if (path === "/metrics" && metricsToken) {
      const presented = bearerToken(req.headers.authorization);
      if (presented === undefined || !metricsToken.has(presented)) {
        // RFC 6750: a challenge, and why a token that was sent is refused.
        res.setHeader(
          "www-authenticate",
          presented === undefined ? 'Bearer realm="metrics"' : 'Bearer realm="metrics", error="invalid_token"',
        );
        send(res, 401, "text/plain; charset=utf-8", "unauthorized: send 'Authorization: Bearer <METRICS_TOKEN>'\n");
        return;
      }
    }
    Promise.resolve(route(res)).catch((err: unknown) => {
      logger.error({ err }, "http endpoint failed");
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
      else res.destroy();
    });
  });

  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    throw new Error(`cannot listen on ${host}:${options.port} (HTTP_HOST/HTTP_PORT): ${(err as Error).message}`, {
      cause: err,
    });
  }
  server.on("error", (err) => {
    logger.error({ err }, "http server error");
  });
  const { port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    address: `${host}:${port}`,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.closeAllConnections();
        }, CLOSE_GRACE_MS);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, "application/json; charset=utf-8", `${JSON.stringify(body)}\n`);
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    "content-type": contentType,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}
