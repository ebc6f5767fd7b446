import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { runSandboxed } from "../sandbox/bubblewrap.ts";

/**
 * Whether this machine can render Manim scenes: `manim --version` run the way renders run, inside
 * the sandbox, which covers bubblewrap and the namespaces it needs as well as Manim itself. Never
 * rejects: any failure is `false`, and `onFailure` gets the reason.
 */
export async function probeManim(bin: string, opts: { onFailure?: (reason: string) => void; tmpDir?: string; sandboxPath?: string } = {}): Promise<boolean> {
  const workDir = await mkdtemp(path.join(opts.tmpDir ?? tmpdir(), "videograph-manim-probe-"));
  try {
    const real = bin.includes("/") ? await realpath(bin) : bin;
    const result = await runSandboxed({
      command: [real, "--version"],
      workDir,
      readOnlyPaths: bin.includes("/") ? [path.dirname(real)] : [],
      env: opts.sandboxPath ? { PATH: opts.sandboxPath } : {},
      limits: { cpuSeconds: 30, wallMs: 60_000, memoryBytes: 2 * 1024 ** 3, processes: 64, outputBytes: 16 * 1024 ** 2, logBytes: 1024 ** 2 },
    });
    if (result.exitCode === 0) return true;
    const said = `${result.stderrTail}\n${result.stdout}`.trim().split("\n").slice(-3).join(" | ");
    opts.onFailure?.(`${bin} --version exited with ${result.signal ?? result.exitCode}${result.limit ? ` (${result.limit} limit)` : ""}${said ? `: ${said}` : ""}`);
    return false;
  } catch (err) {
    opts.onFailure?.((err as Error).message);
    return false;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
