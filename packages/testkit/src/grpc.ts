import { ServerCredentials, type Server } from "@grpc/grpc-js";

/** Binds a scripted gRPC server (for tests of clients) to a free loopback port; returns host:port. */
export async function listenGrpc(server: Server): Promise<string> {
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(err);
      else resolve(bound);
    });
  });
  return `127.0.0.1:${port}`;
}
