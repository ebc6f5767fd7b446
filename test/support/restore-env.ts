import { afterAll } from "vitest";

/**
 * Hands the next test file in this process the `process.env` this one started with. The copy is
 * taken as this setup file runs, before the test file is imported (so a variable set at a file's top
 * level is covered), and put back after the file's own `afterAll`s have stopped the apps, workers and
 * clients that read it. So a file needs no process of its own when it sets `PUBSUB_EMULATOR_HOST`
 * for the Google client libraries (they read it where a client is made) or stubs a variable with
 * `vi.stubEnv` (testing.md, "Which files share a process").
 */
const atStart = { ...process.env };

afterAll(() => {
  for (const name of Object.keys(process.env)) if (!(name in atStart)) delete process.env[name];
  Object.assign(process.env, atStart);
});
