import { status, type Metadata, type ServiceError } from "@grpc/grpc-js";

export { status as Code };

/** Every failed call rejects with this: the gRPC status code, its name and the server's message. */
export class HttpQueueError extends Error {
  override name = "HttpQueueError";
  /** The gRPC status code, e.g. 3 for INVALID_ARGUMENT. */
  readonly code: status;
  /** The code's name, e.g. "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** The server's message, without the code. */
  readonly details: string;
  readonly metadata: Metadata | undefined;

  constructor(code: status, details: string, options?: { cause?: unknown; metadata?: Metadata }) {
    // A code this version does not know still gets a name.
    const codeName = (status as Record<number, string | undefined>)[code] ?? `CODE_${code}`;
    super(`${codeName}: ${details}`, { cause: options?.cause });
    this.code = code;
    this.codeName = codeName;
    this.details = details;
    this.metadata = options?.metadata;
  }

  static fromServiceError(err: ServiceError): HttpQueueError {
    return new HttpQueueError(err.code, err.details || err.message, { cause: err, metadata: err.metadata });
  }
}
