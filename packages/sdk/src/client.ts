import { createRequire } from "node:module";
import {
  Client,
  credentials,
  Metadata,
  status,
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ClientUnaryCall,
  type ChannelOptions,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  findField,
  GetEventRequest,
  GetSigningSecretRequest,
  GetWebhookStatusRequest,
  hasLoneSurrogate,
  ListAttemptsRequest,
  ListEventsRequest,
  ListWebhooksRequest,
  PushEventRequest,
  RecoverWebhookRequest,
  RegisterWebhookRequest,
  ReplayMissedRequest,
  ResendDeliveryRequest,
  RotateSecretRequest,
  UnregisterWebhookRequest,
  UpdateWebhookRequest,
  WatchDeliveriesRequest,
  WebhookServiceService,
  type DeepPartial,
} from "@httpqueue/proto";
import type { CallOptions, HttpQueueClient, Rpc } from "./client-api.js";
import { HttpQueueError } from "./errors.js";
import { toGetWebhookStatusRequest, toPushEventRequest } from "./inputs.js";
import { deliveryWatch } from "./watch.js";

export type { CallOptions, HttpQueueClient } from "./client-api.js";

export interface TlsOptions {
  /** PEM of the CA that signed the server's certificate; the system roots when absent. */
  ca?: string | Buffer;
  /** PEM client certificate and key, for servers that require mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface ClientOptions {
  /** host:port of the httpqueue server, e.g. "127.0.0.1:50051". */
  address: string;
  /** API token, sent as "authorization: Bearer <token>". */
  token?: string | undefined;
  /** true (system roots) or TLS settings; plaintext when absent or false. */
  tls?: boolean | TlsOptions | undefined;
  /** Deadline of each call, in ms, unless a call sets its own. Default 10 000. */
  deadlineMs?: number | undefined;
  /** Product token sent before the SDK's own in the user-agent, e.g. "my-app/1.2". */
  userAgent?: string | undefined;
  /** Extra grpc-js channel options. */
  channelOptions?: ChannelOptions | undefined;
}

const DEFAULT_DEADLINE_MS = 10_000;
const { version: SDK_VERSION } = createRequire(import.meta.url)("../package.json") as { version: string };

interface MessageFns<T> {
  fromPartial(object: DeepPartial<T>): T;
}

/**
 * A client for every httpqueue RPC, with promises, deadlines and typed errors.
 * Nothing connects until the first call. Throws a TypeError for bad options.
 */
export function createClient(options: ClientOptions): HttpQueueClient {
  if (typeof options.address !== "string" || options.address.trim() === "") {
    throw new TypeError("address is required: host:port of the httpqueue server, e.g. 127.0.0.1:50051");
  }
  checkDeadline(options.deadlineMs, "deadlineMs");
  const userAgent = [options.userAgent, `httpqueue-sdk-node/${SDK_VERSION}`].filter(Boolean).join(" ");
  let client: Client;
  try {
    client = new Client(options.address, channelCredentials(options.tls), {
      "grpc.primary_user_agent": userAgent,
      ...options.channelOptions,
    });
  } catch (err) {
    throw new TypeError(`cannot create a client for ${options.address}: ${errorMessage(err)}`, { cause: err });
  }
  const defaultDeadline = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const service = WebhookServiceService;
  let closed = false;

  /** The message and metadata of a call; throws an HttpQueueError when it cannot be sent. */
  function prepare<Req>(request: DeepPartial<Req>, messageFns: MessageFns<Req>, callOptions: CallOptions | undefined) {
    if (closed) throw new HttpQueueError(status.FAILED_PRECONDITION, "the client is closed");
    checkDeadline(callOptions?.deadlineMs, "deadlineMs");
    const message = messageFns.fromPartial(request);
    // UTF-8 cannot carry it: it would arrive as U+FFFD, the text silently changed.
    const damaged = findField(message as object, hasLoneSurrogate);
    if (damaged !== undefined) {
      throw new HttpQueueError(
        status.INVALID_ARGUMENT,
        `${damaged}: holds a lone surrogate (half of a UTF-16 pair), which cannot be sent as UTF-8`,
      );
    }
    const metadata = new Metadata();
    if (options.token) metadata.set("authorization", `Bearer ${options.token}`);
    return { message, metadata };
  }

  function rpc<Req, Res>(
    def: {
      path: string;
      requestSerialize: (value: Req) => Buffer;
      responseDeserialize: (value: Buffer) => Res;
    },
    messageFns: MessageFns<Req>,
  ): Rpc<Req, Res> {
    return (request, callOptions) =>
      new Promise<Res>((resolve, reject) => {
        const signal = callOptions?.signal;
        let call: ClientUnaryCall;
        try {
          if (closed) throw new HttpQueueError(status.FAILED_PRECONDITION, "the client is closed");
          if (signal?.aborted) {
            throw new HttpQueueError(status.CANCELLED, "the call was cancelled before it started", {
              cause: signal.reason,
            });
          }
          const { message, metadata } = prepare(request, messageFns, callOptions);
          const grpcOptions: GrpcCallOptions = { deadline: Date.now() + (callOptions?.deadlineMs ?? defaultDeadline) };
          call = client.makeUnaryRequest(
            def.path,
            def.requestSerialize,
            def.responseDeserialize,
            message,
            metadata,
            grpcOptions,
            (err: ServiceError | null, response?: Res) => {
              signal?.removeEventListener("abort", cancel);
              if (err) reject(HttpQueueError.fromServiceError(err));
              else resolve(response as Res);
            },
          );
        } catch (err) {
          reject(startFailure(err));
          return;
        }
        function cancel() {
          call.cancel();
        }
        signal?.addEventListener("abort", cancel, { once: true });
      });
  }

  // Conversions that throw become rejections: every failure is a rejected promise.
  const guard =
    <In, Out, Res>(convert: (input: In) => Out, call: (request: Out, options?: CallOptions) => Promise<Res>) =>
    async (input: In, callOptions?: CallOptions): Promise<Res> =>
      call(convert(input), callOptions);

  const listWebhooks = rpc(service.listWebhooks, ListWebhooksRequest);
  const listAttempts = rpc(service.listAttempts, ListAttemptsRequest);
  const listEvents = rpc(service.listEvents, ListEventsRequest);
  const getWebhookStatus = guard(toGetWebhookStatusRequest, rpc(service.getWebhookStatus, GetWebhookStatusRequest));
  return {
    registerWebhook: rpc(service.registerWebhook, RegisterWebhookRequest),
    updateWebhook: rpc(service.updateWebhook, UpdateWebhookRequest),
    unregisterWebhook: rpc(service.unregisterWebhook, UnregisterWebhookRequest),
    rotateSecret: rpc(service.rotateSecret, RotateSecretRequest),
    getSigningSecret: rpc(service.getSigningSecret, GetSigningSecretRequest),
    listWebhooks,
    listWebhooksAsync: (request = {}, callOptions) =>
      everyPage(
        (pageToken) => listWebhooks({ ...request, pageToken }, callOptions),
        (page) => page.webhooks,
      ),
    pushEvent: guard(toPushEventRequest, rpc(service.pushEvent, PushEventRequest)),
    getWebhookStatus,
    listDeliveriesAsync: (request, callOptions) =>
      everyPage(
        (pageToken) => getWebhookStatus({ ...request, pageToken }, callOptions),
        (page) => page.deliveries,
      ),
    listAttempts,
    listAttemptsAsync: (request, callOptions) =>
      everyPage(
        (pageToken) => listAttempts({ ...request, pageToken }, callOptions),
        (page) => page.attempts,
      ),
    getEvent: rpc(service.getEvent, GetEventRequest),
    listEvents,
    listEventsAsync: (request = {}, callOptions) =>
      everyPage(
        (pageToken) => listEvents({ ...request, pageToken }, callOptions),
        (page) => page.events,
      ),
    resendDelivery: rpc(service.resendDelivery, ResendDeliveryRequest),
    recoverWebhook: rpc(service.recoverWebhook, RecoverWebhookRequest),
    replayMissed: rpc(service.replayMissed, ReplayMissedRequest),
    watchDeliveries: (request = {}, callOptions) =>
      deliveryWatch(() => {
        const { message, metadata } = prepare<WatchDeliveriesRequest>(request, WatchDeliveriesRequest, callOptions);
        const def = service.watchDeliveries;
        // A stream lives as long as it is read: the client's default deadline is for single calls.
        const deadlineMs = callOptions?.deadlineMs;
        try {
          return client.makeServerStreamRequest(
            def.path,
            def.requestSerialize,
            def.responseDeserialize,
            message,
            metadata,
            deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs },
          );
        } catch (err) {
          throw startFailure(err);
        }
      }, callOptions?.signal),
    close() {
      closed = true;
      client.close();
    },
  };
}

/** The items of every page, fetching each page when the one before is used up. */
async function* everyPage<Page extends { nextPageToken: string }, Item>(
  fetch: (pageToken: string) => Promise<Page>,
  items: (page: Page) => Item[],
): AsyncGenerator<Item> {
  let pageToken = "";
  do {
    const page = await fetch(pageToken);
    yield* items(page);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
}

/** What a call that could not start rejects with. */
function startFailure(err: unknown): HttpQueueError {
  return err instanceof HttpQueueError
    ? err
    : new HttpQueueError(status.INVALID_ARGUMENT, `the call could not start: ${errorMessage(err)}`, { cause: err });
}

function checkDeadline(deadlineMs: number | undefined, name: string) {
  if (deadlineMs !== undefined && !(Number.isFinite(deadlineMs) && deadlineMs > 0)) {
    throw new TypeError(`${name} must be a positive number of milliseconds`);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function channelCredentials(tls: ClientOptions["tls"]): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  if (tls === true) return credentials.createSsl();
  const buf = (v: string | Buffer | undefined) => (v === undefined ? null : Buffer.from(v));
  return credentials.createSsl(buf(tls.ca), buf(tls.key), buf(tls.cert));
}
