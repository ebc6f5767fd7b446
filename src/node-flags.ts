/**
 * The Node flags the API process runs with: `npm start`, the Dockerfile's CMD, and the API
 * processes the tests and benchmarks start (test/support/processes.ts). V8 reads them before any
 * JavaScript runs, so src/main.ts cannot set them itself (it sets the flags V8 reads later, such as
 * `--heap-growing-percent`); test/cli-help.test.ts checks that each place carries them.
 *
 * `--max-semi-space-size=32`: a young generation of at most 64 MiB. Left to itself, V8 grows it to
 * 128 MiB on a 64-bit machine during a connection storm and keeps it: with 10,000 graphql-ws
 * subscribers opening at once the API's RSS peaked at 508–549 MiB, and at 433–435 MiB with this
 * flag, for about the same CPU while events flow (docs/performance.md, "A smaller young generation").
 */
export const API_NODE_FLAGS = ["--max-semi-space-size=32"] as const;
