import { createRequire } from "node:module";
import path from "node:path";
import { defineConfig } from "vitest/config";
import LongestFirstSequencer from "./test/support/sequencer.ts";

const require = createRequire(import.meta.url);

/**
 * Files that run in a process of their own, with a fresh import of everything. The rest share their
 * worker process's imports with the files that ran in it before (`isolate: false`): importing the
 * API (yoga, Pothos, Prisma) costs about 1.4 s of CPU, paid once per process instead of once per file.
 * A file belongs here when it reads module-level state of the API that another file's apps would
 * have changed: the metrics registry (`apiRegistry`), health's last failure, the global tracer, the
 * log destination. Changes to `process.env` need no process of their own: `restore-env.ts` undoes
 * them at the end of each file. A new file of the first kind goes in this list (testing.md, "Which
 * files share a process").
 */
const OWN_PROCESS = [
  "test/bind-address.test.ts",
  "test/health.test.ts",
  "test/logs.test.ts",
  "test/metrics-docs.test.ts",
  "test/metrics.test.ts",
  "test/tracing.test.ts",
];

/**
 * The process-fault tier: files that kill, stop, fill or cut off a real API, worker, Postgres or
 * storage process mid-work (a crash, a deploy, a full disk, an outage, a redelivery across
 * instances) and check what the users' uploads, broadcasts and views see. They are a quarter of the
 * suite's CPU: `npm run test:faults` runs them, `npm test` the rest, CI both (testing.md, "Two
 * tiers"). A new file of that kind goes here.
 */
const FAULT_FILES = [
  "test/database-failover.test.ts",
  "test/database-restart.test.ts",
  "test/database-restart-answers.test.ts",
  "test/event-claims.test.ts",
  "test/live-crash.test.ts",
  "test/live-deploy.test.ts",
  "test/live-full-disk.test.ts",
  "test/live-one-takeover.test.ts",
  "test/live-simulcast-takeover.test.ts",
  "test/live-takeover.test.ts",
  "test/multi-instance.test.ts",
  "test/multi-instance-pubsub.test.ts",
  "test/progress-samples-takeover.test.ts",
  "test/redelivery-takeover.test.ts",
  "test/resume.test.ts",
  "test/storage-outage.test.ts",
  "test/subscription-restart.test.ts",
  "test/worker-debris.test.ts",
  "test/worker/full-disk.test.ts",
];

export default defineConfig({
  resolve: {
    // graphql 16 has no "exports" map: Node loads its CommonJS build for the packages vitest
    // leaves to Node (Pothos, yoga), Vite would pick index.mjs for test files. One copy only.
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
  test: {
    globalSetup: ["test/support/global-setup.ts"],
    // restore-env: each file ends with the process.env it started with (a shared process hands the
    // next file a clean one). fixtures-cleanup: each file's own media dir is removed at its end.
    // file-cpu: CPU per file, written only with FILE_CPU_DIR set (testing.md, "Where the time goes").
    // Setup files' afterAll hooks run after the file's own.
    setupFiles: ["test/support/restore-env.ts", "test/support/fixtures-cleanup.ts", "test/support/file-cpu.ts"],
    // Each file gets its own database. Four files at a time on two cores: many files spend much of
    // their time waiting (deliberate windows, stalls, a browser), so more of them keep the cores
    // busy (testing.md, "Where the time goes").
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 4,
    sequence: { sequencer: LongestFirstSequencer },
    // Google's client libraries otherwise probe the GCE metadata server (169.254.169.254) for a
    // project and credentials; tests reach nothing but 127.0.0.1.
    // X264_PRESET: the workers the tests start (API-level tests) encode with libx264 ultrafast, about
    // half the CPU of the tuned ladder: those tests are about the pipeline, not compression. The
    // worker's own tests (test/worker) and `npm run bench` encode with the shipped tuning.
    // NODE_COMPILE_CACHE: the Node programs the tests start (workers, the API's processes, the CLI's
    // --help runs: hundreds per run) keep V8's compiled code on disk and start on about half the CPU.
    // LIVE_RTMP_PORT: every API a test starts opens its RTMP ingest on a free port, not 1935;
    // LIVE_SRT_PORT: and no SRT ingest (a gateway process each) but where a test asks for one.
    env: {
      LIVE_RTMP_PORT: "0",
      LIVE_SRT_PORT: "off",
      METADATA_SERVER_DETECTION: "none",
      X264_PRESET: "ultrafast",
      NODE_COMPILE_CACHE: path.resolve("node_modules/.cache/node-compile-cache"),
    },
    testTimeout: 90_000,
    hookTimeout: 90_000,
    projects: [
      {
        extends: true,
        test: {
          name: "shared",
          include: ["test/**/*.test.ts"],
          exclude: [...OWN_PROCESS, ...FAULT_FILES],
          isolate: false,
        },
      },
      { extends: true, test: { name: "own-process", include: OWN_PROCESS } },
      { extends: true, test: { name: "faults", include: FAULT_FILES, isolate: false } },
    ],
  },
});
