import { spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { type OperationDefinitionNode, parse } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { programOnPath } from "../src/shared/media-tools.ts";
import { signWebhook } from "../src/webhooks/signature.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { TEST_ADMIN_KEY } from "./support/auth.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";
import {
  callsTheService,
  type DocBlock,
  documentedFiles,
  fencedBlocks,
  fixedAddresses,
  fixedDates,
  GRAPHQL_LANGS,
  NOT_EXAMPLE_LANGS,
  SHELL_LANGS,
  TS_LANGS,
} from "./support/doc-blocks.ts";

const FIRST_JOB = graphql(`query($id: ID!) { video(id: $id) { jobs(first: 1) { edges { node { id } } } } }`);

// Every fenced example of README.md and docs/*.md, run in order against one service, as a reader
// pastes them: the README's tour first (its upload is "the tour's video"), then each doc's blocks.
// How a block opts out, and the variables the GraphQL blocks get: docs/testing.md.

const ROOT = path.resolve(import.meta.dirname, "..");
const blocks = documentedFiles(ROOT).flatMap((file) => fencedBlocks(ROOT, file));
const known = new Set([...GRAPHQL_LANGS, ...SHELL_LANGS, ...TS_LANGS, ...NOT_EXAMPLE_LANGS]);
const examples = blocks.filter(
  (b) =>
    b.skip === null &&
    (GRAPHQL_LANGS.has(b.lang) || TS_LANGS.has(b.lang) || (SHELL_LANGS.has(b.lang) && callsTheService(b.code))),
);
// Root fields that end or remove a video: the test gives them a video of their own, not the tour's.
const DESTRUCTIVE = new Set(["cancelVideo", "deleteVideo", "cancelJob"]);

const DAY_MS = 86_400_000;

const name = (b: DocBlock) => `${b.file}:${b.line} (${b.lang})`;

describe("the documentation's fenced blocks", () => {
  it("each has a language the examples test knows, and an opt-out says why", () => {
    const unknown = blocks.filter((b) => !known.has(b.lang)).map(name);
    expect(unknown, "give the block a language: graphql, sh, ts for examples; text, json, yaml otherwise").toEqual([]);
    expect(blocks.filter((b) => b.skip === "").map(name), "an opt-out names its reason").toEqual([]);
    expect(
      blocks
        .filter(
          (b) => b.skip !== null && !GRAPHQL_LANGS.has(b.lang) && !SHELL_LANGS.has(b.lang) && !TS_LANGS.has(b.lang),
        )
        .map(name),
      "only examples opt out",
    ).toEqual([]);
  });

  it("examples address the service as $API, never a fixed localhost port", () => {
    const code = blocks.filter((b) => GRAPHQL_LANGS.has(b.lang) || SHELL_LANGS.has(b.lang) || TS_LANGS.has(b.lang));
    expect(code.flatMap((b) => fixedAddresses(b.code).map((l) => `${name(b)}: ${l}`))).toEqual([]);
  });

  it("examples carry no fixed date: one in the past answers nothing from the reader's own days", () => {
    const code = blocks.filter((b) => GRAPHQL_LANGS.has(b.lang) || SHELL_LANGS.has(b.lang) || TS_LANGS.has(b.lang));
    expect(code.flatMap((b) => fixedDates(b.code).map((l) => `${name(b)}: ${l}`))).toEqual([]);
  });

  it("the README's tour comes first and makes the video the other examples use", () => {
    expect(examples[0]?.file).toBe("README.md");
    expect(examples[0]?.code).toContain("createUpload");
  });
});

describe("every documented example runs against a started service", () => {
  let t: TestApp;
  let dir: string;
  let shims: string;
  let tourVideo: string | null = null;

  beforeAll(async () => {
    t = await startTestApp({
      // The URL-import recipe imports from a file server on this machine, which needs the test-only setting.
      env: { URL_IMPORT_ALLOW_PRIVATE: "true" },
      // The file ends with a render in flight that no block waits for (the Manim guide's MEDIUM scene):
      // handed back at once, not given the tests' usual 5 s to go on.
      workerEnv: { WORKER_CAPABILITIES: "cpu,local,manim,asr", SHUTDOWN_GRACE_SECONDS: "0" },
    });
    // "This directory" of the tour: its files land here; node_modules is the checkout's (graphql-ws, ws).
    dir = await mkdtemp(path.join(tmpdir(), "videograph-doc-examples-"));
    await symlink(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
    // The webhook receiver imports the copy a CMS makes of this file.
    await copyFile(path.join(ROOT, "src/webhooks/signature.ts"), path.join(dir, "signature.ts"));
    // curl, as the examples call it, also records each answer's status line for the test.
    shims = path.join(dir, ".shims");
    await mkdir(path.join(shims, "calls"), { recursive: true });
    const realCurl = programOnPath("curl");
    if (!realCurl) throw new Error("curl is not on the PATH");
    await writeFile(
      path.join(shims, "curl"),
      `#!/usr/bin/env bash\nid="${shims}/calls/$(date +%s%N)-$$"\n: > "$id.call"\nexec ${realCurl} -D "$id.headers" "$@"\n`,
      { mode: 0o755 },
    );
  });

  afterAll(async () => {
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const block of examples) {
    const tour = block === examples[0];
    it(name(block), { timeout: tour ? 240_000 : 60_000 }, async () => {
      if (GRAPHQL_LANGS.has(block.lang)) await runGraphQL(block);
      else if (SHELL_LANGS.has(block.lang)) await runShell(block, tour);
      else await runReceiver(block);
    });
  }

  async function runShell(block: DocBlock, tour: boolean) {
    for (const f of await readdir(path.join(shims, "calls"))) await rm(path.join(shims, "calls", f));
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      PATH: `${shims}:${process.env.PATH}`,
      API: t.url,
      VIDEOGRAPH_KEY: TEST_ADMIN_KEY,
    };
    if (tourVideo) env.VIDEO = tourVideo;
    const run = await runBash(block.code, dir, env, tour ? 230_000 : 55_000);
    expect(run.code, `exit status; stderr:\n${run.stderr}`).toBe(0);
    const calls = (await readdir(path.join(shims, "calls"))).filter((f) => f.endsWith(".call"));
    expect(calls.length, "the block calls curl").toBeGreaterThan(0);
    for (const call of calls) {
      const headers = await readFile(path.join(shims, "calls", call.replace(/\.call$/, ".headers")), "utf8").catch(
        () => "",
      );
      const status = headers.split("\r\n").findLast((l) => l.startsWith("HTTP/")) ?? "no answer";
      expect(status, `a curl of the block; stderr:\n${run.stderr}`).toMatch(/^HTTP\/[\d.]+ 2\d\d/);
    }
    expect(run.stdout, "a GraphQL answer printed by the block").not.toMatch(/"errors"\s*:/);
    expect(run.stdout, "a GraphQL answer printed by the block").not.toMatch(/"__typename"\s*:\s*"\w*Error"/);
    if (tour) {
      tourVideo = JSON.parse(await readFile(path.join(dir, "upload.json"), "utf8")).data.createUpload.video.id;
      const { data } = await t.gql(`query($id: ID!) { video(id: $id) { status } }`, { id: tourVideo });
      expect(data.video.status).toBe("READY");
      if (block.code.includes("ffprobe")) {
        const rungs = run.stdout
          .trim()
          .split("\n")
          .filter((l) => /^\d+x\d+$/.test(l));
        expect(rungs.length, "step 4 prints each rung once").toBeGreaterThan(1);
        expect(new Set(rungs).size, "step 4 prints each rung once").toBe(rungs.length);
      }
    }
  }

  async function runGraphQL(block: DocBlock) {
    const document = parse(block.code);
    const operations = document.definitions.filter(
      (d): d is OperationDefinitionNode => d.kind === "OperationDefinition",
    );
    expect(operations.length).toBeGreaterThan(0);
    if (operations.length > 1) {
      expect(operations.filter((o) => !o.name).length, "a block with several operations names each").toBe(0);
    }
    const given = variablesInComments(block.code);
    for (const operation of operations) {
      const roots = operation.selectionSet.selections.flatMap((s) => (s.kind === "Field" ? [s.name.value] : []));
      const variables: Record<string, unknown> = {};
      for (const definition of operation.variableDefinitions ?? []) {
        const v = definition.variable.name.value;
        if (v in given) variables[v] = given[v];
        else variables[v] = await defaultVariable(v, roots, definition.type.kind === "NonNullType");
        if (variables[v] === undefined) delete variables[v];
      }
      if (roots.includes("renderManim")) await manimWorkerReady();
      const operationName = operation.name?.value;
      if (operation.operation === "subscription") {
        const client = t.wsClient();
        const events: unknown[] = [];
        // The tour's video is READY: its stream is the current state, then the end.
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, 10_000);
          client.subscribe(
            { query: block.code, variables, operationName },
            {
              next: (m) => (m.errors ? reject(new Error(JSON.stringify(m.errors))) : events.push(m.data)),
              error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
              complete: () => {
                clearTimeout(timer);
                resolve();
              },
            },
          );
        });
        expect(events.length, "the subscription sent an event").toBeGreaterThan(0);
        await client.dispose();
        continue;
      }
      const res = await fetch(`${t.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${TEST_ADMIN_KEY}` },
        body: JSON.stringify({ query: block.code, variables, operationName }),
      });
      const body = await res.json();
      expect(body.errors, `${operationName ?? "the operation"} answered errors`).toBeUndefined();
      expect(res.status).toBe(200);
      for (const root of roots) {
        const value = body.data[root];
        expect(value, `${root} answered null`).not.toBeNull();
        if (value && typeof value === "object" && !Array.isArray(value)) {
          expect(Object.keys(value).length, `${root} matched none of the block's union members`).toBeGreaterThan(0);
          expect(value.__typename ?? "", `${root}: ${JSON.stringify(value)}`).not.toMatch(/Error$/);
        }
      }
    }
  }

  /** The variables a GraphQL block leaves to the reader: ids of the tour's video and what earlier examples made. */
  async function defaultVariable(variable: string, roots: string[], required: boolean): Promise<unknown> {
    if (variable === "id" || variable === "videoId") {
      if (roots.some((r) => DESTRUCTIVE.has(r))) return throwawayVideo();
      if (!tourVideo) throw new Error("the tour's video is not there");
      return tourVideo;
    }
    if (variable === "jobId") return throwawayJob();
    if (variable === "assetId") {
      const { data } = await t.gql(`{ assets { id } }`);
      return data.assets[0]?.id;
    }
    // Instants are the reader's: the last 30 days up to now, as the blocks suggest, never a fixed date.
    if (variable === "from" || variable === "since") return new Date(Date.now() - 30 * DAY_MS).toISOString();
    if (variable === "to") return new Date().toISOString();
    if (variable === "liveStreamId") {
      const { data } = await t.gql(`{ liveStreams { id } }`);
      return data.liveStreams[0]?.id;
    }
    if (required) throw new Error(`$${variable} has no value: give it in the block as a "# $${variable}: <JSON>" line`);
    return undefined;
  }

  async function throwawayVideo(): Promise<string> {
    return (await createUpload(t, "throwaway")).id;
  }

  /** A job that is still queued or running: the tour's clip uploaded again. */
  async function throwawayJob(): Promise<string> {
    const { id, uploadUrl } = await createUpload(t, "throwaway");
    const put = await fetch(`${t.url}${uploadUrl}`, {
      method: "PUT",
      body: await readFile(path.join(dir, "clip.mp4")),
    });
    expect(put.status).toBe(200);
    const jobs = await t.gql(FIRST_JOB, { id });
    return jobs.data.video!.jobs.edges[0]!.node.id;
  }

  async function manimWorkerReady() {
    const deadline = Date.now() + 50_000;
    while ((await t.app.services.db.worker.count({ where: { capabilities: { has: "manim" } } })) === 0) {
      if (Date.now() > deadline) throw new Error("no worker advertised manim within 50 s: run `npm run setup:manim`");
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * A TypeScript block is a webhook receiver: run it as the API guide says, with `node` on Node 24 and
   * with `npx -y node@24` under the system's Node (Debian's 20 runs no `.ts`), then send it a signed
   * delivery and a forged one.
   */
  async function runReceiver(block: DocBlock) {
    const file = path.join(dir, `example-${block.line}.ts`);
    await writeFile(file, block.code);
    await answersAsDocumented(process.execPath, [file], process.env.PATH ?? "");
    // The Node outside node_modules/.bin (npm puts the project's Node 24 first), as a CMS's shell has it.
    const systemPath = (process.env.PATH ?? "")
      .split(path.delimiter)
      .filter((d) => !d.includes("node_modules"))
      .join(path.delimiter);
    const guide = await readFile(path.join(ROOT, block.file), "utf8");
    expect(guide, "the guide says how to run it on Node 20").toContain("npx -y node@24 receiver.ts");
    const npx = programOnPath("npx", systemPath);
    if (!npx) throw new Error("npx is not on the PATH");
    // Offline: npm takes node@24 from the checkout (the scratch dir's node_modules) or its cache, never the network.
    await answersAsDocumented(npx, ["-y", "node@24", file], systemPath, { npm_config_offline: "true" });
  }

  async function answersAsDocumented(
    program: string,
    args: string[],
    PATH: string,
    extraEnv: Record<string, string> = {},
  ): Promise<void> {
    const port = await freePort();
    const secret = "whsec_docs_example";
    // Its own process group: npx's Node child ends with it.
    const child = spawn(program, args, {
      cwd: dir,
      env: { ...process.env, PATH, PORT: String(port), VIDEOGRAPH_WEBHOOK_SECRET: secret, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let output = "";
    child.stdout.on("data", (c) => (output += c));
    child.stderr.on("data", (c) => (output += c));
    const how = `${path.basename(program)} ${args.slice(0, -1).join(" ")}`;
    try {
      const body = JSON.stringify({
        id: "evt_docs",
        type: "video.ready",
        createdAt: new Date().toISOString(),
        data: { videoId: "v" },
      });
      const send = (signature: string) =>
        fetch(`http://127.0.0.1:${port}/hooks/videograph`, {
          method: "POST",
          headers: { "content-type": "application/json", "webhook-id": "evt_docs", signature },
          body,
        }).then((r) => r.status);
      const deadline = Date.now() + 20_000;
      let status = 0;
      while (status === 0) {
        status = await send(signWebhook(secret, body)).catch(() => 0);
        if (status === 0) {
          expect(child.exitCode, `the receiver (${how}) exited:\n${output}`).toBeNull();
          expect(Date.now() < deadline, `the receiver (${how}) did not listen on PORT:\n${output}`).toBe(true);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      expect(status, output).toBe(200);
      expect(await send(signWebhook("another secret", body)), output).toBe(400);
    } finally {
      killGroup(child.pid);
    }
  }
});

/** `# $name: <JSON>` lines of a GraphQL block: the values of its variables a reader would fill in. */
function variablesInComments(code: string): Record<string, unknown> {
  const given: Record<string, unknown> = {};
  for (const line of code.split("\n")) {
    const text = line.trim();
    if (!text.startsWith("# $")) continue;
    const colon = text.indexOf(":");
    if (colon < 0) throw new Error(`"${text}" gives no value: write it as "# $name: <JSON>"`);
    given[text.slice(3, colon).trim()] = JSON.parse(text.slice(colon + 1));
  }
  return given;
}

async function runBash(code: string, cwd: string, env: Record<string, string>, timeoutMs: number) {
  // Files rather than pipes: `tee /dev/stderr` (the tour's step 3) cannot open a socket, as Node's pipes are.
  const stdoutFile = path.join(cwd, ".block-stdout");
  const stderrFile = path.join(cwd, ".block-stderr");
  const [out, err] = await Promise.all([open(stdoutFile, "w"), open(stderrFile, "w")]);
  try {
    const exitCode = await new Promise<number | null>((resolve) => {
      // Its own process group, so what the block starts in the background ends with it.
      const child = spawn("bash", ["-e", "-c", code], { cwd, env, detached: true, stdio: ["ignore", out.fd, err.fd] });
      const timer = setTimeout(() => killGroup(child.pid), timeoutMs);
      child.on("exit", (status) => {
        clearTimeout(timer);
        killGroup(child.pid);
        resolve(status);
      });
    });
    return { code: exitCode, stdout: await readFile(stdoutFile, "utf8"), stderr: await readFile(stderrFile, "utf8") };
  } finally {
    await Promise.all([out.close(), err.close()]);
  }
}

function killGroup(pid: number | undefined) {
  try {
    if (pid) process.kill(-pid, "SIGTERM");
  } catch {
    // already gone
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
