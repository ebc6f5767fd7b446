import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_FILE_LINES, MAX_FUNCTION_LINES, PRODUCT_ROOTS, shapeViolations } from "../scripts/code-shape.ts";

/** A function whose text spans exactly `lines` lines. */
function functionOf(name: string, lines: number): string {
  const body = Array.from({ length: lines - 2 }, (_, i) => `  const v${i} = ${i};`);
  return [`export function ${name}(): void {`, ...body, "}"].join("\n");
}

// `npm run lint` runs scripts/code-shape.ts over the tree (lint:shape); this proves it catches what
// it is for, so a green lint means something.
describe("code shape (scripts/code-shape.ts)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "videograph-shape-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a function one line over the limit is refused, one at the limit is not", async () => {
    await writeFile(path.join(dir, "at-limit.ts"), functionOf("atLimit", MAX_FUNCTION_LINES));
    await writeFile(
      path.join(dir, "over.ts"),
      `const handlers = {\n  onEvent: ${functionOf("x", MAX_FUNCTION_LINES + 1).replace("export function x", "function")},\n};\nexport default handlers;\n`,
    );
    const found = shapeViolations([dir]);
    expect(found).toEqual([
      {
        file: path.join(dir, "over.ts"),
        line: 2,
        name: "onEvent",
        lines: MAX_FUNCTION_LINES + 1,
        limit: MAX_FUNCTION_LINES,
      },
    ]);
  });

  it("a file one line over the limit is refused, one at the limit is not; nested functions are measured each", async () => {
    const sub = path.join(dir, "nested");
    await mkdir(sub);
    const constants = (n: number) => Array.from({ length: n }, (_, i) => `export const c${i} = ${i};`).join("\n");
    await writeFile(path.join(sub, "at-limit.tsx"), constants(MAX_FILE_LINES));
    await writeFile(path.join(sub, "long.tsx"), constants(MAX_FILE_LINES + 1));
    const inner = functionOf("inner", MAX_FUNCTION_LINES + 5).replace("export ", "  ");
    await writeFile(path.join(sub, "outer.ts"), `export function outer(): void {\n${inner}\n}\n`);
    expect(shapeViolations([sub])).toEqual([
      { file: path.join(sub, "long.tsx"), line: 1, name: null, lines: MAX_FILE_LINES + 1, limit: MAX_FILE_LINES },
      {
        file: path.join(sub, "outer.ts"),
        line: 1,
        name: "outer",
        lines: MAX_FUNCTION_LINES + 7,
        limit: MAX_FUNCTION_LINES,
      },
      {
        file: path.join(sub, "outer.ts"),
        line: 2,
        name: "inner",
        lines: MAX_FUNCTION_LINES + 5,
        limit: MAX_FUNCTION_LINES,
      },
    ]);
  });

  it("the product's own code keeps the rules", () => {
    expect(shapeViolations(PRODUCT_ROOTS)).toEqual([]);
  });
});
