import { afterAll } from "vitest";

/**
 * Gives each test file the `process.env` it started with, and hands the next file in the same
 * process the same: the values as this setup file runs (before the test file is imported, so a
 * file that sets a variable at its top level is covered too) come back after the file's own
 * `afterAll`s, which stop the apps, workers and clients that read them. Files that set variables
 * for the Google client libraries (`PUBSUB_EMULATOR_HOST`, read where a client is made) or stub
 * them (`vi.stubEnv`) can then share a process with others (testing.md, "Which files share a process").
 */
const atStart = { ...process.env };

afterAll(() => {
  for (const name of Object.keys(process.env)) if (!(name in atStart)) delete process.env[name];
  Object.assign(process.env, atStart);
});
