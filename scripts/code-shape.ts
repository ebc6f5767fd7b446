// The size rules of the product's code (docs/development.md#design-rules): no function longer than
// MAX_FUNCTION_LINES, no file longer than MAX_FILE_LINES. `npm run lint` runs it over the tree;
// test/code-shape.test.ts proves it catches what it is for.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { parseCommandLine } from "../src/shared/command-line.ts";

export const MAX_FUNCTION_LINES = 200;
export const MAX_FILE_LINES = 600;
/** Where the product's code lives; generated code and builds are not written by hand. */
export const PRODUCT_ROOTS = ["src", "render-worker", "console/src", "console/graphiql"];
const SKIPPED_DIRS = new Set(["node_modules", "generated", "dist"]);

export interface ShapeViolation {
  file: string;
  line: number;
  /** The function's name, or null for the file itself. */
  name: string | null;
  lines: number;
  limit: number;
}

function sourceFiles(root: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name)) found.push(...sourceFiles(full));
    } else if (/\.tsx?$/.test(entry.name) && !entry.name.endsWith(".d.ts")) {
      found.push(full);
    }
  }
  return found;
}

function functionName(node: ts.SignatureDeclaration): string {
  if (node.name) return node.name.getText();
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) && parent.name) {
    return parent.name.getText();
  }
  return "(anonymous function)";
}

/** Every function and file under `roots` over its limit, longest first. */
export function shapeViolations(roots: string[]): ShapeViolation[] {
  const violations: ShapeViolation[] = [];
  for (const file of roots.flatMap(sourceFiles)) {
    const text = readFileSync(file, "utf8");
    const fileLines = text.split("\n").length;
    if (fileLines > MAX_FILE_LINES) {
      violations.push({ file, line: 1, name: null, lines: fileLines, limit: MAX_FILE_LINES });
    }
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && "body" in node && node.body) {
        const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
        const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
        const lines = last - first + 1;
        if (lines > MAX_FUNCTION_LINES) {
          violations.push({ file, line: first + 1, name: functionName(node), lines, limit: MAX_FUNCTION_LINES });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return violations.sort((a, b) => b.lines - a.lines);
}

if (import.meta.main) {
  const { positionals } = parseCommandLine(
    `usage: npm run lint:shape [-- DIR...]
Exits 1 (listing each) when a function is longer than ${MAX_FUNCTION_LINES} lines or a file longer than
${MAX_FILE_LINES} lines under DIR (default: ${PRODUCT_ROOTS.join(", ")}). Split it by phase or
responsibility: docs/development.md#design-rules.`,
    { allowPositionals: true },
  );
  const found = shapeViolations(positionals.length > 0 ? positionals : PRODUCT_ROOTS);
  for (const v of found) {
    const what = v.name === null ? "file" : `function ${v.name}`;
    console.error(`${v.file}:${v.line}: ${what} is ${v.lines} lines (at most ${v.limit})`);
  }
  if (found.length > 0) process.exit(1);
  console.log(`code shape: no function over ${MAX_FUNCTION_LINES} lines, no file over ${MAX_FILE_LINES}`);
}
