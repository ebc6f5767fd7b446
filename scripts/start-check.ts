// The README's first command, as a new user runs it: in a fresh clone of HEAD, `npm ci && npm start`
// in a process group of its own (a terminal's foreground group), then /health, the console on /, the printed admin
// key, one upload to READY through the public API, and Ctrl-C (SIGINT to the whole group).
// A clean stop: exit code 0 within STOP_SECONDS, no error-level log line, no stack trace, and no
// process of the clone left running. Uncommitted changes are not checked: the clone is of HEAD.
import { execFileSync, spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, readdir, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../src/free-port.ts";
import { descendantPids } from "../test/support/process-scan.ts";
import { parseCommandLine } from "../src/shared/command-line.ts";

parseCommandLine(
  `usage: npm run check:start
In a fresh clone of HEAD, runs the README's start command (npm ci && npm start) as a new user
would, checks /health and the console on /, uploads a generated clip to READY through the public API, then sends
Ctrl-C to the process group and checks a clean stop: exit within 30 s, no error-level line, no
stack trace, no process left. Uncommitted changes are not checked.`,
  {},
);

const STOP_SECONDS = 30;
const START_SECONDS = 600;
const READY_SECONDS = 300;
const START_COMMAND = "npm ci && npm start";

const repo = path.resolve(import.meta.dirname, "..");
const head = execFileSync("git", ["-C", repo, "rev-parse", "HEAD"], { encoding: "utf8" }).trim();
if (execFileSync("git", ["-C", repo, "status", "--porcelain"], { encoding: "utf8" }).trim()) {
  say(`uncommitted changes are not in the check: it clones HEAD (${head.slice(0, 12)})`);
}

function say(line: string): void {
  process.stdout.write(`[check:start] ${line}\n`);
}

class CheckFailed extends Error {}

function fail(message: string): never {
  throw new CheckFailed(message);
}

/**
 * The environment of a new user's shell: this one without the service's settings (so it runs on
 * the embedded default), without what `npm run` adds (its package, its node_modules/.bin).
 */
async function newUserEnv(port: number): Promise<NodeJS.ProcessEnv> {
  const template = await readFile(path.join(repo, ".env.template"), "utf8");
  const settings = new Set([...template.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!));
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (settings.has(name) || name === "INIT_CWD" || name === "NODE") continue;
    if (/^npm_(lifecycle|package|command|execpath|node_execpath)|^npm_config_(local_prefix|global_prefix)$/.test(name))
      continue;
    env[name] = value;
  }
  env.PATH = (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter(
      (dir) =>
        !dir.includes(`${path.sep}node_modules${path.sep}`) && !dir.endsWith(`${path.sep}node_modules${path.sep}.bin`),
    )
    .join(path.delimiter);
  // Another service may hold the default 4000 on a shared machine; PORT is a documented setting.
  env.PORT = String(port);
  // Likewise the RTMP ingest's default 1935.
  env.LIVE_RTMP_PORT = "0";
  // And the SRT ingest's 9000 (UDP).
  env.LIVE_SRT_PORT = "0";
  return env;
}

/** Live processes whose command line, or working directory, is inside `dir`. */
async function processesIn(dir: string, candidates: number[]): Promise<string[]> {
  const left: string[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => null);
    if (!stat || stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
    const cmdline = (await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "")).split("\0").join(" ").trim();
    const cwd = await readlink(`/proc/${name}/cwd`).catch(() => "");
    if (candidates.includes(Number(name)) || cmdline.includes(dir) || cwd.startsWith(dir))
      left.push(`${name} ${cmdline}`);
  }
  return left;
}

const work = await mkdtemp(path.join(tmpdir(), "videograph-start-check-"));
// As root, the embedded Postgres runs as the "postgres" user, which must traverse to ./data.
await chmod(work, 0o755);
const clone = path.join(work, "videograph");
say(`fresh clone of ${head.slice(0, 12)} in ${clone}`);
execFileSync("git", ["clone", "--quiet", "--no-checkout", repo, clone]);
execFileSync("git", ["-C", clone, "checkout", "--quiet", "--detach", head]);

const port = await freePort();
say(`${START_COMMAND}   (PORT=${port})`);
const started = Date.now();
const shell = spawn("sh", ["-c", START_COMMAND], {
  cwd: clone,
  env: await newUserEnv(port),
  detached: true,
  stdio: ["ignore", "pipe", "pipe"],
});
let output = "";
for (const stream of [shell.stdout, shell.stderr]) stream.on("data", (d) => (output += d));
const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
  shell.once("exit", (code, signal) => resolve({ code, signal })),
);
let exitedEarly = false;
void exited.then(() => (exitedEarly = true));

async function waitFor<T>(what: string, seconds: number, probe: () => T | null | Promise<T | null>): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (exitedEarly) fail(`\`${START_COMMAND}\` exited before ${what}`);
    if (Date.now() > deadline) fail(`no ${what} within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

try {
  const url = await waitFor(
    '"API listening"',
    START_SECONDS,
    () => output.match(/"url":"(http:\/\/[^"]+)\/graphql".*"message":"API listening"/)?.[1] ?? null,
  );
  say(`listening at ${url} after ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const health = await fetch(`${url}/health`).then((r) => r.json());
  if (health?.status !== "ok") fail(`/health answered ${JSON.stringify(health)}`);
  // npm ci built the console: / is its page, and the script it names is served.
  const page = await fetch(`${url}/`);
  const html = await page.text();
  const script = html.match(/src="(\/static\/[^"]+\.js)"/)?.[1] ?? fail(`/ is not the console (${page.status})`);
  if ((await fetch(`${url}${script}`)).status !== 200) fail(`the console's ${script} is not served`);
  const key =
    output.match(/shown once, keep it:\s+export VIDEOGRAPH_KEY=(vg_\S+)/)?.[1] ?? fail("no admin API key printed");

  async function gql(query: string, variables: Record<string, unknown> = {}) {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = await res.json();
    if (body.errors) fail(`GraphQL errors: ${JSON.stringify(body.errors)}`);
    return body.data;
  }

  const clip = path.join(work, "clip.mp4");
  execFileSync("ffmpeg", [
    "-hide_banner",
    "-loglevel",
    "error",
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=640x360:rate=25",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440",
    "-t",
    "3",
    "-c:v",
    "libx264",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
    "-shortest",
    clip,
  ]);
  const created = await gql(
    `mutation { createUpload(input: { title: "start check" }) { __typename ... on CreateUploadSuccess { uploadUrl ` +
      `video { id } } ... on Error { message } } }`,
  );
  if (created.createUpload.__typename !== "CreateUploadSuccess")
    fail(`createUpload: ${JSON.stringify(created.createUpload)}`);
  const { uploadUrl, video } = created.createUpload;
  const put = await fetch(new URL(uploadUrl, url), { method: "PUT", body: await readFile(clip) });
  if (put.status !== 200) fail(`PUT ${uploadUrl}: ${put.status} ${await put.text()}`);
  say(`uploaded video ${video.id}; waiting for READY`);
  const status = await waitFor("READY", READY_SECONDS, async () => {
    const { video: v } = await gql(`query ($id: ID!) { video(id: $id) { status } }`, { id: video.id });
    return v.status === "READY" || v.status === "FAILED" ? (v.status as string) : null;
  });
  if (status !== "READY") fail(`the video ended ${status}`);
  say("READY");

  const running = descendantPids(shell.pid!);
  say(`Ctrl-C (SIGINT to process group ${shell.pid})`);
  const interruptedAt = Date.now();
  process.kill(-shell.pid!, "SIGINT");
  let stopTimer: NodeJS.Timeout | undefined;
  const tooLate = new Promise<never>((_, reject) => {
    stopTimer = setTimeout(
      () => reject(new CheckFailed(`still running ${STOP_SECONDS} s after Ctrl-C`)),
      STOP_SECONDS * 1000,
    );
  });
  const { code, signal } = await Promise.race([exited, tooLate]);
  clearTimeout(stopTimer);
  say(
    `exited with code ${code}${signal ? ` (signal ${signal})` : ""} ` +
      `after ${((Date.now() - interruptedAt) / 1000).toFixed(1)} s`,
  );
  // npm ends a script interrupted by a signal by re-raising it on itself once the script has
  // exited, and the shell follows: so a clean Ctrl-C ends by SIGINT (130 in a shell), after the
  // API has logged its last step (it exits 0 then; test/embedded-start.test.ts checks that code).
  if (!(signal === "SIGINT" || code === 130 || code === 0))
    fail(`ended with code ${code}, signal ${signal}; a clean Ctrl-C ends by SIGINT`);
  if (/"message":"second signal/.test(output)) fail("a process was signalled twice and forced to exit");
  const errorLines = output.split("\n").filter((line) => /"severity":"ERROR"/.test(line));
  if (errorLines.length) fail(`error-level log lines:\n${errorLines.join("\n")}`);
  if (/^\s+at .+:\d+:\d+\)?$/m.test(output)) fail("a stack trace in the output");
  if (!output.includes('"message":"embedded Postgres stopped"')) fail("the embedded Postgres did not report its stop");
  let left: string[] = [];
  for (let i = 0; i < 20; i++) {
    left = await processesIn(clone, running);
    if (!left.length) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (left.length) fail(`processes left running after Ctrl-C:\n${left.join("\n")}`);
  say("passed: started from a fresh clone, served, encoded to READY, stopped cleanly on Ctrl-C");
} catch (err) {
  process.stderr.write(`${output.slice(-8000)}\n`);
  process.stderr.write(`[check:start] FAILED: ${err instanceof CheckFailed ? err.message : (err as Error).stack}\n`);
  // Whatever is still running from the clone goes; the clone stays for a look.
  try {
    process.kill(-shell.pid!, "SIGKILL");
  } catch {}
  for (const line of await processesIn(clone, [])) {
    try {
      process.kill(Number(line.split(" ")[0]), "SIGKILL");
    } catch {}
  }
  process.stderr.write(`[check:start] the clone and its output.log are kept in ${work}\n`);
  await writeFile(path.join(work, "output.log"), output);
  process.exit(1);
}
await rm(work, { recursive: true, force: true });
