#!/usr/bin/env node
import { run } from "./program.js";

// Deprecation notices from dependencies are for their developers, not for
// people at a terminal (e.g. Node's about TLS to an IP address, which grpc-js
// triggers with --ca and an IP in --addr); they would also break --json users
// who read stderr.
process.noDeprecation = true;

// A closed pipe (`webhookctl webhooks list | head -1`) is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

let interrupts: AbortController | undefined;

process.exitCode = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  interrupted() {
    if (!interrupts) {
      const controller = new AbortController();
      const abort = () => {
        controller.abort();
      };
      process.once("SIGINT", abort).once("SIGTERM", abort);
      interrupts = controller;
    }
    return interrupts.signal;
  },
});
