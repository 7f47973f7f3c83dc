export { createTestCertificates, type TestCertificates } from "./certificates.js";
export { ADMIN_URL, createTestDatabase, databaseUrl, type TemplateOptions, type TestDatabase } from "./database.js";
export { eventually, until } from "./eventually.js";
export { listenGrpc } from "./grpc.js";
export { freePort } from "./ports.js";
export { runToExit, spawnServer, terminate, type ServerProcess } from "./process.js";
export { startReceiver, type ReceivedRequest, type Receiver, type Responder } from "./receiver.js";
export { startTcpProxy, type TcpProxy } from "./tcp-proxy.js";
