import { spawn } from "node:child_process";
import { chmod, copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseProcStat, processAlive } from "../src/shared/proc-stat.ts";

describe("parseProcStat", () => {
  it("finds the fields after a command name holding spaces and parentheses", () => {
    const stat = parseProcStat("4242 (a) (b c) S 17 4242 1 0 -1 4194304 98 0 0 0 5 6 7 8 20 0 1 0 68901 3133440 357\n");
    expect(stat.pid).toBe(4242);
    expect(stat.comm).toBe("a) (b c");
    expect(stat.state).toBe("S");
    expect(stat.field(5)).toBe(4242);
    expect(stat.field(4)).toBe(17);
    expect([stat.field(14), stat.field(15), stat.field(16), stat.field(17)]).toEqual([5, 6, 7, 8]);
    expect(stat.field(22)).toBe(68901);
  });

  it("reads a real process whose name holds spaces and parentheses", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "proc-stat-"));
    const name = "x) (y z";
    const program = path.join(dir, name);
    await copyFile("/bin/sleep", program);
    await chmod(program, 0o755);
    const child = spawn(program, ["30"], { stdio: "ignore" });
    try {
      await new Promise((resolve, reject) => child.once("spawn", resolve).once("error", reject));
      const stat = parseProcStat(await readFile(`/proc/${child.pid}/stat`, "utf8"));
      expect(stat.pid).toBe(child.pid);
      expect(stat.comm).toBe(name);
      expect(stat.field(4)).toBe(process.pid);
      expect(stat.field(22)).toBeGreaterThan(0);
    } finally {
      child.kill();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("rejects a line that is not a stat line", () => {
    expect(() => parseProcStat("no parentheses here")).toThrow(/not a \/proc/);
  });
});

describe("processAlive", () => {
  it("finds this process, and no process for an id that is not a positive integer", () => {
    expect(processAlive(process.pid)).toBe(true);
    // 0 and -1 name process groups, which signal 0 would find; 2147483646 is past any pid here.
    for (const pid of [0, -1, 1.5, Number.NaN, 2147483646]) expect(processAlive(pid), String(pid)).toBe(false);
  });
});
