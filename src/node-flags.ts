/**
 * The Node flags the API process runs with (`npm start`, the Dockerfile, the tests' and benchmarks' API
 * processes; test/cli-help.test.ts checks each): V8 reads them before any JavaScript runs, so src/main.ts
 * cannot set them. `--max-semi-space-size=32` keeps V8 from growing the young generation to 128 MiB in a
 * connection storm and keeping it (docs/performance.md, "A smaller young generation").
 */
export const API_NODE_FLAGS = ["--max-semi-space-size=32"] as const;
