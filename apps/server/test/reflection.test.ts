import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { credentials, status } from "@grpc/grpc-js";
import { grpcReflectionV1 } from "@httpqueue/proto";
import { startTestServer, type TestServer } from "./helpers/server.js";

/** buf, a Go program: its reflection client is the one grpcurl-style tools use. */
const BUF = createRequire(import.meta.url).resolve("@bufbuild/buf/bin/buf");

async function bufCurl(args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args],
    { timeout: 30_000 },
  );
  return stdout;
}

type Request = grpcReflectionV1.ServerReflectionRequest["messageRequest"];
type Response = grpcReflectionV1.ServerReflectionResponse["messageResponse"];

/** One reflection stream: `ask` sends a request and resolves with its answer. */
function reflectionStream(address: string) {
  const client = new grpcReflectionV1.ServerReflectionClient(address, credentials.createInsecure());
  const call = client.serverReflectionInfo();
  const waiting: ((res: grpcReflectionV1.ServerReflectionResponse) => void)[] = [];
  call.on("data", (res: grpcReflectionV1.ServerReflectionResponse) => waiting.shift()?.(res));
  call.on("error", () => undefined);
  return {
    ask(messageRequest: Request) {
      return new Promise<Response>((resolve) => {
        waiting.push((res) => {
          assert.deepEqual(res.originalRequest?.messageRequest, messageRequest, "the request is echoed");
          resolve(res.messageResponse);
        });
        call.write({ host: "", messageRequest });
      });
    },
    close() {
      call.end();
      client.close();
    },
  };
}

function descriptors(res: Response): FileDescriptorProto[] {
  assert.equal(res?.$case, "fileDescriptorResponse", JSON.stringify(res));
  return res.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

describe("reflection", () => {
  let server: TestServer;
  let url: string;
  before(async () => {
    server = await startTestServer();
    url = `http://${server.app.address}`;
  });
  after(async () => {
    await server.stop();
  });

  it("lists the services to a Go client (buf curl), over v1 and v1alpha", async () => {
    const expected = [
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "httpqueue.v1.WebhookService",
    ];
    for (const protocol of ["grpc-v1", "grpc-v1alpha"]) {
      const listed = await bufCurl(["--reflect-protocol", protocol, "--list-services", url]);
      assert.deepEqual(listed.trim().split("\n").sort(), expected, protocol);
    }
    const methods = await bufCurl(["--list-methods", url]);
    assert.match(methods, /^httpqueue\.v1\.WebhookService\/PushEvent$/m);
  });

  it("lets a Go client call the API and the health service through reflection", async () => {
    const registered = JSON.parse(
      await bufCurl([
        "-d",
        JSON.stringify({ namespace: "reflect", event: "called", url: "http://127.0.0.1:9/hook" }),
        `${url}/httpqueue.v1.WebhookService/RegisterWebhook`,
      ]),
    ) as { webhookId: string; webhook: { createdAt: string } };
    assert.match(registered.webhookId, /^[0-9a-f-]{36}$/);
    assert.ok(!Number.isNaN(Date.parse(registered.webhook.createdAt)), "google.protobuf.Timestamp was resolved");

    const listed = JSON.parse(
      await bufCurl([
        "--reflect-protocol",
        "grpc-v1alpha",
        "-d",
        '{"namespace":"reflect"}',
        `${url}/httpqueue.v1.WebhookService/ListWebhooks`,
      ]),
    ) as { webhooks: { id: string }[] };
    assert.deepEqual(
      listed.webhooks.map((w) => w.id),
      [registered.webhookId],
    );

    const health = JSON.parse(await bufCurl([`${url}/grpc.health.v1.Health/Check`])) as { status: string };
    assert.deepEqual(health, { status: "SERVING" });
  });

  it("answers symbol, file and extension requests, sending each dependency once per stream", async () => {
    const stream = reflectionStream(server.app.address);
    try {
      const first = descriptors(
        await stream.ask({ $case: "fileContainingSymbol", value: "httpqueue.v1.WebhookService" }),
      );
      assert.deepEqual(
        first.map((f) => f.name),
        ["httpqueue/v1/webhook.proto", "google/protobuf/timestamp.proto"],
      );
      // What a client does with them: build a registry, which fails on any unresolved reference.
      const registry = createFileRegistry(first[0]!, (name) => first.find((f) => f.name === name));
      const service = registry.getService("httpqueue.v1.WebhookService");
      assert.ok(
        service?.methods.some((m) => m.name === "PushEvent" && m.input.typeName === "httpqueue.v1.PushEventRequest"),
      );

      const again = descriptors(await stream.ask({ $case: "fileByFilename", value: "httpqueue/v1/webhook.proto" }));
      assert.deepEqual(
        again.map((f) => f.name),
        ["httpqueue/v1/webhook.proto"],
        "dependencies already sent on this stream are not sent again",
      );

      for (const symbol of [
        "httpqueue.v1.WebhookService.PushEvent",
        "httpqueue.v1.PushEventRequest",
        "httpqueue.v1.PushEventRequest.payload",
        "httpqueue.v1.DeliveryStatus",
        "httpqueue.v1.DELIVERY_STATUS_SUCCEEDED",
      ]) {
        const [file] = descriptors(await stream.ask({ $case: "fileContainingSymbol", value: symbol }));
        assert.equal(file?.name, "httpqueue/v1/webhook.proto", symbol);
      }
      const [health] = descriptors(await stream.ask({ $case: "fileContainingSymbol", value: "grpc.health.v1.Health" }));
      assert.equal(health?.name, "grpc/health/v1/health.proto");

      const numbers = await stream.ask({ $case: "allExtensionNumbersOfType", value: "httpqueue.v1.Webhook" });
      assert.deepEqual(numbers, {
        $case: "allExtensionNumbersResponse",
        value: { baseTypeName: "httpqueue.v1.Webhook", extensionNumber: [] },
      });

      for (const request of [
        { $case: "fileContainingSymbol", value: "httpqueue.v1.NoSuchThing" },
        { $case: "fileByFilename", value: "no/such/file.proto" },
        { $case: "allExtensionNumbersOfType", value: "httpqueue.v1.NoSuchMessage" },
        {
          $case: "fileContainingExtension",
          value: { containingType: "httpqueue.v1.Webhook", extensionNumber: 1000 },
        },
      ] as const) {
        const res = await stream.ask(request);
        assert.equal(res?.$case, "errorResponse", JSON.stringify(request));
        assert.equal(res.value.errorCode, status.NOT_FOUND);
      }
    } finally {
      stream.close();
    }
  });
});
