import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// Every relative link of the project's Markdown names a file that exists and, with `#anchor`, a
// heading of that file as GitHub writes its anchor. An edit that drops or renames a section fails
// here, not in a reader's browser.

const ROOT = path.resolve(import.meta.dirname, "..");
const markdownIn = (dir: string) =>
  readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `${dir}/${f}`);
const FILES = ["README.md", "CHANGELOG.md", "CONTRIBUTING.md", ...markdownIn("docs"), ...markdownIn("deploy")];

/** The lines of a Markdown file outside fenced blocks, with their numbers. */
function proseLines(file: string): { line: string; number: number }[] {
  const out: { line: string; number: number }[] = [];
  let fence: string | null = null;
  readFileSync(path.join(ROOT, file), "utf8")
    .split("\n")
    .forEach((line, i) => {
      const opening = line.trimStart();
      const marker = opening.startsWith("```") ? "```" : opening.startsWith("~~~") ? "~~~" : null;
      if (marker && (fence === null || fence === marker)) {
        fence = fence === null ? marker : null;
        return;
      }
      if (fence === null) out.push({ line, number: i + 1 });
    });
  return out;
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens; repeats numbered. */
function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { line } of proseLines(file)) {
    const heading = /^#{1,6} (.+)$/.exec(line);
    if (!heading) continue;
    const slug = heading[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, "")
      .replace(/ /g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

describe("the documentation's links", () => {
  it("name files that exist and headings that they have", () => {
    const anchors = new Map<string, Set<string>>();
    const broken: string[] = [];
    for (const file of FILES) {
      for (const { line, number } of proseLines(file)) {
        for (const [, target] of line.matchAll(/\]\(([^)\s]+)\)/g)) {
          if (/^[a-z][a-z0-9+.-]*:/i.test(target!)) continue; // https:, mailto:
          const [pathPart, anchor] = target!.split("#");
          const dest = pathPart ? path.normalize(path.join(path.dirname(file), pathPart)) : file;
          if (!existsSync(path.join(ROOT, dest))) {
            broken.push(`${file}:${number}: ${target} (no such file)`);
            continue;
          }
          if (!anchor || !dest.endsWith(".md")) continue;
          if (!anchors.has(dest)) anchors.set(dest, anchorsOf(dest));
          if (!anchors.get(dest)!.has(anchor)) broken.push(`${file}:${number}: ${target} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it("would see a dropped section: the anchors of a file are its headings'", () => {
    const live = anchorsOf("docs/live.md");
    expect(live.has("recording-on-or-off")).toBe(true);
    expect(live.has("the-top-rung-copied")).toBe(true);
    expect(live.has("no-such-section")).toBe(false);
  });
});
