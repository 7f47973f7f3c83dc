import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/schema.ts",
  out: "./drizzle",
  // graphile-worker owns its own schema; keep drizzle-kit out of it.
  schemaFilter: ["public"],
});
