// Sends a request's bytes as they are: grpc-js with a serializer that
// serializes nothing.
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import type { RpcTarget } from "./requests.js";

/** The status code's name; "OPEN" for a stream that started (the client then cancels it). */
export type Outcome = { code: string; details: string };

export function rawClient(address: string): Client {
  return new Client(address, credentials.createInsecure(), {
    "grpc.max_send_message_length": -1,
    "grpc.max_receive_message_length": -1,
  });
}

const identity = (b: Buffer) => b;
const codeName = (code: number) => (status as Record<number, string | undefined>)[code] ?? `CODE_${code}`;

export function send(client: Client, target: RpcTarget, bytes: Buffer, deadlineMs: number): Promise<Outcome> {
  const options = { deadline: Date.now() + deadlineMs };
  if (target.responseStream) {
    return new Promise((resolve) => {
      const call = client.makeServerStreamRequest(target.path, identity, identity, bytes, new Metadata(), options);
      let opened = false;
      // The server sends its headers once the stream is live: that is a success.
      call.on("metadata", () => {
        opened = true;
        call.cancel();
      });
      call.on("data", () => {
        opened = true;
        call.cancel();
      });
      call.on("error", (err: ServiceError) => {
        resolve(opened ? { code: "OPEN", details: "" } : { code: codeName(err.code), details: err.details });
      });
      call.on("end", () => {
        resolve({ code: opened ? "OPEN" : "OK", details: "" });
      });
    });
  }
  return new Promise((resolve) => {
    client.makeUnaryRequest(target.path, identity, identity, bytes, new Metadata(), options, (err) => {
      resolve(err ? { code: codeName(err.code), details: err.details } : { code: "OK", details: "" });
    });
  });
}
