import { createRequire } from "node:module";
import { defineConfig } from "vitest/config";
import LongestFirstSequencer from "./test/support/sequencer.ts";

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // graphql 16 has no "exports" map: Node loads its CommonJS build for the packages vitest
    // leaves to Node (Pothos, yoga), Vite would pick index.mjs for test files. One copy only.
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    // Each file gets its own process and database. Three files at a time on two cores: many files
    // spend much of their time waiting (deliberate windows, stalls, a browser), so a third keeps
    // the cores busy (testing.md, "Where the time goes").
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 3,
    sequence: { sequencer: LongestFirstSequencer },
    // Google's client libraries otherwise probe the GCE metadata server (169.254.169.254) for a
    // project and credentials; tests reach nothing but 127.0.0.1.
    // X264_PRESET: the workers the tests start (API-level tests) encode with libx264 ultrafast, about
    // half the CPU of the tuned ladder: those tests are about the pipeline, not compression. The
    // worker's own tests (test/worker) and `npm run bench` encode with the shipped tuning.
    env: { METADATA_SERVER_DETECTION: "none", X264_PRESET: "ultrafast" },
    testTimeout: 90_000,
    hookTimeout: 90_000,
  },
});
