import {
  Client,
  credentials,
  Metadata,
  status,
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  GetWebhookStatusRequest,
  ListWebhooksRequest,
  PushEventRequest,
  RegisterWebhookRequest,
  UnregisterWebhookRequest,
  UpdateWebhookRequest,
  WebhookServiceService,
  type DeepPartial,
  type GetWebhookStatusResponse,
  type ListWebhooksResponse,
  type PushEventResponse,
  type RegisterWebhookResponse,
  type UnregisterWebhookResponse,
  type UpdateWebhookResponse,
  type Webhook,
} from "@httpqueue/proto";
import { HttpQueueError } from "./errors.js";

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
  /** Extra grpc-js channel options. */
  channelOptions?: ChannelOptions | undefined;
}

export interface CallOptions {
  /** Deadline of this call, in ms. */
  deadlineMs?: number | undefined;
  /** Cancels the call (it rejects with CANCELLED). */
  signal?: AbortSignal | undefined;
}

type Rpc<Req, Res> = (request: DeepPartial<Req>, options?: CallOptions) => Promise<Res>;

export interface HttpQueueClient {
  /** Registers a webhook; the response carries its signing secret, shown only here. */
  registerWebhook: Rpc<RegisterWebhookRequest, RegisterWebhookResponse>;
  /** Changes the fields that are set; deactivating cancels pending deliveries. */
  updateWebhook: Rpc<UpdateWebhookRequest, UpdateWebhookResponse>;
  /** Removes a webhook and cancels its pending deliveries. */
  unregisterWebhook: Rpc<UnregisterWebhookRequest, UnregisterWebhookResponse>;
  /** One page of webhooks. */
  listWebhooks: Rpc<ListWebhooksRequest, ListWebhooksResponse>;
  /** Every webhook, fetching page after page: `for await (const w of client.listWebhooksAsync({}))`. */
  listWebhooksAsync(
    request?: DeepPartial<Omit<ListWebhooksRequest, "pageToken">>,
    options?: CallOptions,
  ): AsyncIterable<Webhook>;
  /** Pushes an event; durable once this resolves. */
  pushEvent: Rpc<PushEventRequest, PushEventResponse>;
  /** Deliveries of a webhook (`identifier: { $case: "webhookId", value }`) or of an event (`$case: "eventId"`). */
  getWebhookStatus: Rpc<GetWebhookStatusRequest, GetWebhookStatusResponse>;
  /** Closes the channel. */
  close(): void;
}

const DEFAULT_DEADLINE_MS = 10_000;

interface MessageFns<T> {
  fromPartial(object: DeepPartial<T>): T;
}

/** A client for every httpqueue RPC, with promises, deadlines and typed errors. */
export function createClient(options: ClientOptions): HttpQueueClient {
  const client = new Client(options.address, channelCredentials(options.tls), options.channelOptions);
  const defaultDeadline = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const service = WebhookServiceService;

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
        const metadata = new Metadata();
        if (options.token) metadata.set("authorization", `Bearer ${options.token}`);
        const grpcOptions: GrpcCallOptions = {
          deadline: Date.now() + (callOptions?.deadlineMs ?? defaultDeadline),
        };
        const signal = callOptions?.signal;
        if (signal?.aborted) {
          reject(
            new HttpQueueError(status.CANCELLED, "the call was cancelled before it started", { cause: signal.reason }),
          );
          return;
        }
        const call = client.makeUnaryRequest(
          def.path,
          def.requestSerialize,
          def.responseDeserialize,
          messageFns.fromPartial(request),
          metadata,
          grpcOptions,
          (err: ServiceError | null, response?: Res) => {
            signal?.removeEventListener("abort", cancel);
            if (err) reject(HttpQueueError.fromServiceError(err));
            else resolve(response as Res);
          },
        );
        function cancel() {
          call.cancel();
        }
        signal?.addEventListener("abort", cancel, { once: true });
      });
  }

  const listWebhooks = rpc(service.listWebhooks, ListWebhooksRequest);
  return {
    registerWebhook: rpc(service.registerWebhook, RegisterWebhookRequest),
    updateWebhook: rpc(service.updateWebhook, UpdateWebhookRequest),
    unregisterWebhook: rpc(service.unregisterWebhook, UnregisterWebhookRequest),
    listWebhooks,
    async *listWebhooksAsync(request = {}, callOptions) {
      let pageToken = "";
      do {
        const page = await listWebhooks({ ...request, pageToken }, callOptions);
        yield* page.webhooks;
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
    },
    pushEvent: rpc(service.pushEvent, PushEventRequest),
    getWebhookStatus: rpc(service.getWebhookStatus, GetWebhookStatusRequest),
    close() {
      client.close();
    },
  };
}

function channelCredentials(tls: ClientOptions["tls"]): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  if (tls === true) return credentials.createSsl();
  const buf = (v: string | Buffer | undefined) => (v === undefined ? null : Buffer.from(v));
  return credentials.createSsl(buf(tls.ca), buf(tls.key), buf(tls.cert));
}
