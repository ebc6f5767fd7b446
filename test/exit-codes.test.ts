import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, test } from "vitest";

const root = path.resolve(import.meta.dirname, "..");

describe("exit codes survive the embedded Postgres package", () => {
  test("a program that imports src/db/embedded.ts keeps the exit code it sets", () => {
    const run = spawnSync(process.execPath, ["-e", 'await import("./src/db/embedded.ts"); process.exitCode = 3;'], {
      cwd: root,
      encoding: "utf8",
      input: "",
    });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(3);
  });

  test("a failing test under the project's global setup makes vitest exit non-zero", () => {
    const vitest = path.join(root, "node_modules", "vitest", "vitest.mjs");
    const run = spawnSync(process.execPath, [vitest, "run", "--config", "test/fixtures/exit-code/vitest.config.ts"], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, CI: "1" },
    });
    expect(run.stdout + run.stderr).toContain("1 failed");
    expect(run.status).toBe(1);
  });
});
