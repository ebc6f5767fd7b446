import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";

/** Alive and not a zombie (PID 1 here may not reap orphans). */
async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat !== null && stat[stat.lastIndexOf(")") + 2] !== "Z";
}

describe("diesWithWorker", () => {
  it("a tool started through it (as ffprobe and espeak-ng are) dies when its Node parent is SIGKILLed", async () => {
    // A Node process standing in for the worker: it starts `sleep` as the media tools are started and prints its pid.
    const script = `
      const { execFile } = require("node:child_process");
      import(${JSON.stringify(new URL("../../render-worker/media/tool-process.ts", import.meta.url).href)}).then(({ \
diesWithWorker }) => {
        const tool = diesWithWorker("sleep", ["30"]);
        const child = execFile(tool.file, tool.args, () => {});
        child.once("spawn", () => console.log(child.pid));
      });`;
    const parent = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const toolPid = await new Promise<number>((resolve) =>
      parent.stdout!.once("data", (d) => resolve(Number(String(d).trim()))),
    );
    await sleep(200);
    expect(await isRunning(toolPid)).toBe(true);
    expect((await readFile(`/proc/${toolPid}/cmdline`, "utf8")).split("\0")[0]).toBe("sleep");

    parent.kill("SIGKILL");
    let running = true;
    for (let i = 0; i < 20 && running; i++) {
      await sleep(100);
      running = await isRunning(toolPid);
    }
    if (running) process.kill(toolPid, "SIGKILL");
    expect(running).toBe(false);
  });
});
