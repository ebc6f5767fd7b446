import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);

/** Every npm script that runs one of the project's command-line programs (scripts/, bench/, the API, the worker). */
const commands = Object.entries(JSON.parse(readFileSync("package.json", "utf8")).scripts as Record<string, string>)
  .filter(
    ([, command]) =>
      /\b(scripts|bench)\/[\w-]+\.(ts|sh)\b|\b(src|render-worker)\/main\.ts\b/.test(command) && !command.includes("&&"),
  )
  .map(([name]) => name);

async function npmRun(name: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // No DATABASE_URL and no cloud settings: answering --help or refusing a flag must need neither.
  const env = { ...process.env, DATABASE_URL: "", GOOGLE_CLOUD_PROJECT: "", GCS_BUCKET: "", DATA_DIR: "/nonexistent" };
  try {
    const { stdout, stderr } = await run("npm", ["run", "--silent", name, "--", ...args], { env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const STACK_TRACE = /^\s+at |node:internal|Error: /m;

describe("every command-line program answers --help and refuses unknown flags without a stack trace", () => {
  it("finds the programs in package.json", () => {
    expect(commands).toEqual(
      expect.arrayContaining([
        "start",
        "worker",
        "apikey:create",
        "apikey:list",
        "apikey:revoke",
        "migrate:create",
        "migrate:check",
        "migrate:deploy",
        "schema:print",
        "setup:pubsub",
        "setup:gcs",
        "setup:emulators",
        "bench",
        "loadtest",
        "chaos",
      ]),
    );
  });

  it.each(commands)("npm run %s -- --help: usage on stdout, exit 0", async (name) => {
    const { code, stdout, stderr } = await npmRun(name, "--help");
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^usage: npm (run |start\b)/);
    expect(stderr).not.toMatch(STACK_TRACE);
    // No .env is expected (the project has none): nothing is said about it.
    expect(stderr).not.toContain(".env not found");
  });

  it.each(commands)("npm run %s -- --no-such-flag: the reason and usage on stderr, exit 2", async (name) => {
    const { code, stdout, stderr } = await npmRun(name, "--no-such-flag");
    expect(code, stderr).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/--no-such-flag[\s\S]*usage: npm (run |start\b)/);
    expect(stderr).not.toMatch(STACK_TRACE);
  });

  it("apikey: a missing command, a missing value and a missing key id are usage errors too", async () => {
    for (const [name, args, reason] of [
      ["apikey:create", ["--tenant"], /argument missing/],
      ["apikey:create", ["--tenant", "acme"], /--scopes is required/],
      ["apikey:revoke", [], /one key id or prefix is required/],
      ["migrate:create", [], /one migration name is required/],
    ] as const) {
      const { code, stderr } = await npmRun(name, ...args);
      expect(code, `${name} ${args.join(" ")}: ${stderr}`).toBe(2);
      expect(stderr).toMatch(reason);
      expect(stderr).not.toMatch(STACK_TRACE);
    }
  });
});

describe("the npm scripts' .env loader (src/shared/env-file.ts)", () => {
  it("loads ./.env under the variables already set, and says nothing when there is none", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "videograph-env-file-"));
    try {
      const loader = path.resolve("src/shared/env-file.ts");
      const args = ["--import", loader, "-e", "console.log(process.env.VG_A, process.env.VG_B)"];
      const env = { ...process.env, VG_A: "from-environment" };
      const without = await run(process.execPath, args, { cwd: dir, env });
      expect(without).toEqual({ stdout: "from-environment undefined\n", stderr: "" });
      await writeFile(path.join(dir, ".env"), "VG_A=from-file\nVG_B=from-file\n");
      const withFile = await run(process.execPath, args, { cwd: dir, env });
      expect(withFile).toEqual({ stdout: "from-environment from-file\n", stderr: "" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
