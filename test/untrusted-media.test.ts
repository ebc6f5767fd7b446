import { createHash } from "node:crypto";
import { chmod, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WORKER_ENV_NAMES } from "../src/shared/worker-env.ts";
import { MEDIA_TOOL_ENV_NAMES } from "../render-worker/media/tool-environment.ts";
import { startTestApp, TESTS_OWN_WORKER_ENV, type TestApp } from "./support/app.ts";
import { childProcessPids } from "./support/process-scan.ts";
import { graphql } from "./support/graphql.ts";
import { uploadAndWait } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const WORKER_ENTRY = "render-worker/main.ts";

/** Secrets in the API's environment, as a deployment has them. */
const API_SECRETS = {
  JWT_SECRET: "jwt-secret-3b9e51c0d7a24f6e8c1d2b3a4f5e6d7c",
  SIGNING_SECRET: "signing-secret-8f7e6d5c4b3a29180f1e2d3c4b5a6978",
  GEMINI_API_KEY: "gemini-key-2c4e6a8b",
  AWS_SECRET_ACCESS_KEY: "aws-secret-1a3c5e7g",
  BOOTSTRAP_API_KEY: "vg_bootstrap_5e1d9c3b7a2f4e6d8c0b",
};

const VIDEO = graphql(`
  query($id: ID!) {
    video(id: $id) {
      id status error posterUrl
      variants { name status playlistUrl }
      jobs(first: 5) { edges { node { status attempt error } } }
    } }`);

/** A wrapper that writes the environment it was started with to `dir`, then runs the real program. */
async function revealingWrapper(dir: string, program: string): Promise<string> {
  const wrapper = path.join(dir, program);
  await writeFile(wrapper, `#!/bin/sh\nenv > "${dir}/${program}-env-$$"\nexec ${program} "$@"\n`);
  await chmod(wrapper, 0o755);
  return wrapper;
}

function namesIn(environment: string, separator: string): string[] {
  return environment
    .split(separator)
    .filter(Boolean)
    .map((entry) => entry.slice(0, entry.indexOf("=")));
}

describe(`through the public API: a tenant's playlist cannot read another tenant's video, and the worker holds \
no API secrets`, () => {
  let t: TestApp;
  let dumpDir: string;

  beforeAll(async () => {
    dumpDir = await mkdtemp(path.join(tmpdir(), "videograph-env-dumps-"));
    for (const [name, value] of Object.entries(API_SECRETS)) vi.stubEnv(name, value);
    t = await startTestApp({
      workerEnv: {
        FFPROBE_PATH: await revealingWrapper(dumpDir, "ffprobe"),
        FFMPEG_PATH: await revealingWrapper(dumpDir, "ffmpeg"),
      },
    });
  });
  afterAll(async () => {
    await t?.stop();
    vi.unstubAllEnvs();
    if (dumpDir) await rm(dumpDir, { recursive: true, force: true });
  });

  it(`an HLS playlist pointing into the victim's directory ends FAILED with a readable reason, the victim's \
media unread`, async () => {
    const victim = await uploadAndWait(
      t,
      new Uint8Array(await readFile(await makeClip({ width: 320, height: 240, seconds: 2, audio: false }))),
      "victim",
    );
    expect(victim.status).toBe("READY");
    const rung = (await t.gql(VIDEO, { id: victim.id })).data.video!.variants[0]!.name;
    const segment = path.join(t.dataDir, "videos", victim.id, "hls", rung, "seg_00000.ts");
    const sha256 = createHash("sha256")
      .update(await readFile(segment))
      .digest("hex");
    // The first read of the file from now on moves its access time (relatime), so a read would show.
    await utimes(segment, new Date(1_000_000), new Date(2_000_000));

    const attacks = [
      `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n../../${victim.id}/hls/${rung}/seg_00000.ts\n#EXT-X-ENDLIST\n`,
      `ffconcat version 1.0\nfile '${segment}'\n`,
    ];
    const reasons = [
      /^The file is an HLS playlist, not a video: /,
      /^The file is an ffmpeg concat list, not a video: /,
    ];
    for (const [i, attack] of attacks.entries()) {
      const final = await uploadAndWait(t, new TextEncoder().encode(attack), `attack ${i}`);
      expect(final.status).toBe("FAILED");
      expect(final.error).toMatch(reasons[i]!);
      const video = (await t.gql(VIDEO, { id: final.id })).data.video!;
      expect(video).toMatchObject({ posterUrl: null, variants: [] });
      expect(video.jobs.edges.map((e) => e.node)).toEqual([{ status: "FAILED", attempt: 1, error: final.error }]);
      // Nothing was published for the attacker: its directory holds its upload only.
      expect(await readdir(path.join(t.dataDir, "videos", final.id))).toEqual(["source"]);
    }
    expect((await stat(segment)).atimeMs, "the victim's segment was never read").toBe(1_000_000);
    expect(
      createHash("sha256")
        .update(await readFile(segment))
        .digest("hex"),
    ).toBe(sha256);
  });

  it(`the worker the API started has only the worker's variables; ffprobe and ffmpeg inside it have none \
of its secrets`, async () => {
    const [pid] = childProcessPids(WORKER_ENTRY);
    const environ = await readFile(`/proc/${pid}/environ`, "utf8");
    const names = namesIn(environ, "\0");
    // Node adds NODE_CHANNEL_* itself for the IPC channel that tells the worker the API is gone.
    // The test app adds its own (TESTS_OWN_WORKER_ENV: the compile cache), which the API never passes.
    const ipc = ["NODE_CHANNEL_FD", "NODE_CHANNEL_SERIALIZATION_MODE"];
    const testsOwn: readonly string[] = TESTS_OWN_WORKER_ENV;
    expect(names.filter((n) => !WORKER_ENV_NAMES.includes(n) && !ipc.includes(n) && !testsOwn.includes(n))).toEqual([]);
    for (const [name, value] of Object.entries(API_SECRETS)) {
      expect(names).not.toContain(name);
      expect(environ).not.toContain(value);
    }

    const dumps = await Promise.all(
      (await readdir(dumpDir)).filter((f) => f.includes("-env-")).map((f) => readFile(path.join(dumpDir, f), "utf8")),
    );
    // The victim's probe and ladder (which makes the poster), and the attackers' probes.
    expect(dumps.length).toBeGreaterThanOrEqual(4);
    const databaseUrl = t.database.url;
    for (const dump of dumps) {
      const toolNames = namesIn(dump, "\n").filter((n) => !["PWD", "SHLVL", "_", "OLDPWD"].includes(n));
      expect(toolNames.filter((n) => !MEDIA_TOOL_ENV_NAMES.includes(n))).toEqual([]);
      expect(dump).not.toContain(databaseUrl);
      for (const value of Object.values(API_SECRETS)) expect(dump).not.toContain(value);
    }
  });
});
