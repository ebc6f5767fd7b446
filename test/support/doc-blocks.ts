import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

/** A fenced block of a Markdown file, with its 1-based line and the opt-out marker before it, if any. */
export interface DocBlock {
  file: string;
  line: number;
  lang: string;
  code: string;
  /** The reason of an `<!-- example: skip (reason) -->` on the line before the fence, else null. */
  skip: string | null;
}

/** Fence languages that are examples to run: GraphQL documents, shell commands, a TypeScript receiver. */
export const GRAPHQL_LANGS = new Set(["graphql"]);
export const SHELL_LANGS = new Set(["sh", "bash", "console"]);
export const TS_LANGS = new Set(["ts"]);
/** Fence languages that are not examples: output, playlists, log filters, config. */
export const NOT_EXAMPLE_LANGS = new Set(["text", "json", "yaml"]);

const SKIP_OPEN = "<!-- example: skip (";
const SKIP_CLOSE = ") -->";

/** README.md and docs/*.md of the checkout at `root`, in the order a reader meets them. */
export function documentedFiles(root: string): string[] {
  const docs = readdirSync(path.join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`);
  return ["README.md", ...docs];
}

/** Every fenced block (``` or ~~~, indented or not) of one Markdown file. */
export function fencedBlocks(root: string, file: string): DocBlock[] {
  const lines = readFileSync(path.join(root, file), "utf8").split("\n");
  const at = (i: number) => lines[i] ?? "";
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const opening = at(i).trimStart();
    const fence = opening.startsWith("```") ? "```" : opening.startsWith("~~~") ? "~~~" : null;
    if (!fence) continue;
    const indent = at(i).length - opening.length;
    const lang = opening.slice(fence.length).trim().split(/\s+/)[0] ?? "";
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && at(j).trim() !== fence) body.push(at(j++).slice(indent));
    let before = i - 1;
    while (before >= 0 && at(before).trim() === "") before--;
    const marker = at(before).trim();
    const skip =
      marker.startsWith(SKIP_OPEN) && marker.endsWith(SKIP_CLOSE)
        ? marker.slice(SKIP_OPEN.length, -SKIP_CLOSE.length).trim()
        : null;
    blocks.push({ file, line: i + 1, lang, code: body.join("\n"), skip });
    i = j;
  }
  return blocks;
}

/** Whether a shell block talks to the service (an example to run) rather than being a setup command. */
export function callsTheService(code: string): boolean {
  return code.includes("$API") || code.includes("curl ");
}

/**
 * Lines of a shell or GraphQL block that name the service by a fixed address instead of `$API`, outside `#`
 * comments (the line that sets `$API` aside).
 */
/** Lines of an example that write a calendar date (`2026-11-01`): the reader's today moves on, the example's would not. */
export function fixedDates(code: string): string[] {
  return code.split("\n").filter((line) => /(^|\D)\d{4}-\d{2}-\d{2}/.test(line));
}

export function fixedAddresses(code: string): string[] {
  return code.split("\n").filter((line) => {
    const comment = line.search(/(^|\s)#/);
    const text = comment < 0 ? line : line.slice(0, comment);
    return text.includes("localhost:") && !text.trimStart().startsWith("export API=");
  });
}
