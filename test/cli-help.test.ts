import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { API_NODE_FLAGS } from "../src/node-flags.ts";

const run = promisify(execFile);

const scripts = JSON.parse(readFileSync("package.json", "utf8")).scripts as Record<string, string>;

/** Every npm script that runs one of the project's command-line programs (scripts/, bench/, the API, the worker). */
const commands = Object.entries(scripts)
  .filter(
    ([, command]) =>
      /\b(scripts|bench)\/[\w-]+\.(ts|sh)\b|\b(src|render-worker)\/main\.ts\b/.test(command) && !command.includes("&&"),
  )
  .map(([name]) => name);

// No DATABASE_URL and no cloud settings: answering --help or refusing a flag must need neither.
const ENV = { ...process.env, DATABASE_URL: "", GOOGLE_CLOUD_PROJECT: "", GCS_BUCKET: "", DATA_DIR: "/nonexistent" };

async function outcome(command: Promise<{ stdout: string; stderr: string }>) {
  try {
    const { stdout, stderr } = await command;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `npm run --silent name -- ...args`, through npm itself. */
function npmRun(name: string, ...args: string[]) {
  return outcome(run("npm", ["run", "--silent", name, "--", ...args], { env: ENV, timeout: 60_000 }));
}

/**
 * The script `name` run as `npm run` runs it: its command line in `sh -c`, with the arguments
 * appended and node_modules/.bin first on PATH. npm itself costs about 0.3 s of CPU a start, and
 * there are over a hundred starts here: one test below goes through npm to keep the wiring checked.
 */
function scriptRun(name: string, ...args: string[]) {
  const env = { ...ENV, PATH: `${path.resolve("node_modules/.bin")}:${process.env.PATH}` };
  return outcome(run("sh", ["-c", `${scripts[name]} "$@"`, "sh", ...args], { env, timeout: 60_000 }));
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

  it("npm start and the API's Docker image run it with the API's Node flags (src/node-flags.ts)", () => {
    const dockerCmd = /^CMD (\[.*\])$/m.exec(readFileSync("Dockerfile", "utf8"))?.[1];
    expect(JSON.parse(dockerCmd ?? "[]")).toEqual(["node", ...API_NODE_FLAGS, "src/main.ts"]);
    const start = scripts.start!.split(" ");
    expect(start.slice(0, 1 + API_NODE_FLAGS.length)).toEqual(["node", ...API_NODE_FLAGS]);
    expect(start.at(-1)).toBe("src/main.ts");
  });

  it("through npm itself: npm run start -- --help and npm run bench -- --no-such-flag", async () => {
    const help = await npmRun("start", "--help");
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm start\b/);
    const refused = await npmRun("bench", "--no-such-flag");
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/--no-such-flag[\s\S]*usage: npm run bench/);
  });

  it.concurrent.each(commands)("npm run %s -- --help: usage on stdout, exit 0", async (name) => {
    const { code, stdout, stderr } = await scriptRun(name, "--help");
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^usage: npm (run |start\b)/);
    expect(stderr).not.toMatch(STACK_TRACE);
    // No .env is expected (the project has none): nothing is said about it.
    expect(stderr).not.toContain(".env not found");
  });

  it.concurrent.each(commands)("npm run %s -- --no-such-flag: the reason and usage on stderr, exit 2", async (name) => {
    const { code, stdout, stderr } = await scriptRun(name, "--no-such-flag");
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
      const { code, stderr } = await scriptRun(name, ...args);
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
