import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

/** Runs dependency-cruiser with the project's rules over `paths`; resolves its violations. */
async function violations(...paths: string[]): Promise<Violation[]> {
  const result = await run(
    "npx",
    ["--no-install", "depcruise", ...paths, "--config", ".dependency-cruiser.cjs", "--output-type", "json"],
    { maxBuffer: 64 * 1024 * 1024 },
  ).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? "" }));
  return JSON.parse(result.stdout).summary.violations;
}

// `npm run lint` runs these rules over the whole tree (lint:imports); this proves they catch what
// they are for, so a green lint means something.
describe("import rules (dependency-cruiser)", () => {
  it("a circle made of type-only imports is refused", async () => {
    const found = await violations("test/fixtures/import-circle");
    expect(found).toEqual([
      expect.objectContaining({
        rule: expect.objectContaining({ name: "no-circular" }),
        from: "test/fixtures/import-circle/clip.ts",
        to: "test/fixtures/import-circle/track.ts",
      }),
    ]);
  });

  it("the product's own tree has no circle and keeps its layers", async () => {
    expect(await violations("src", "render-worker", "console/src")).toEqual([]);
  });
});
