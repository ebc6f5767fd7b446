import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const SCRIPT = path.resolve(import.meta.dirname, "../scripts/setup-manim.sh");

describe("npm run setup:manim", () => {
  it("stops before pip and names the Debian packages whose headers are missing", async () => {
    // pkg-config then finds no .pc file at all: as on a machine without libcairo2-dev and libpango1.0-dev.
    const failed = await run("bash", [SCRIPT], {
      env: { ...process.env, PKG_CONFIG_LIBDIR: "/nonexistent", PKG_CONFIG_PATH: "" },
    }).catch((e) => e);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("[setup:manim] missing Debian packages: libcairo2-dev libpango1.0-dev\n");
    expect(failed.stderr).toContain("apt-get install -y --no-install-recommends libcairo2-dev libpango1.0-dev");
  });

  it("with everything there, is up to date after the pretest's install", async () => {
    const { stdout } = await run("bash", [SCRIPT]);
    expect(stdout).toBe("[setup:manim] up to date in .tools/manim\n");
  });
});
