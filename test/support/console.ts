import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, open, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { type Browser, chromium } from "playwright-core";
import { CONSOLE_DIST } from "../../src/http/console.ts";
import { GRAPHIQL_MANIFEST } from "../../src/http/graphiql.ts";

const run = promisify(execFile);

/**
 * Where the console tests put their screenshots: a temp dir, so a test run leaves the checkout as it
 * was; `SCREENSHOTS_DIR=docs/screenshots` refreshes the committed ones (docs/testing.md).
 */
export async function screenshotsDir(): Promise<string> {
  const dir = path.resolve(process.env.SCREENSHOTS_DIR ?? path.join(tmpdir(), "videograph-screenshots"));
  await mkdir(dir, { recursive: true });
  return dir;
}
const CONSOLE_ROOT = path.resolve(CONSOLE_DIST, "..");
const LOCK = path.join(tmpdir(), `videograph-console-build-${createHash("sha1").update(CONSOLE_DIST).digest("hex")}`);

/**
 * Whether console/dist is missing, half-written, or older than a source of the console: the build
 * writes GRAPHIQL_MANIFEST last.
 */
async function stale(): Promise<boolean> {
  const built = await stat(GRAPHIQL_MANIFEST).catch(() => null);
  if (!built) return true;
  const sources = (await readdir(path.join(CONSOLE_ROOT, "src"), { recursive: true })).map((f) =>
    path.join(CONSOLE_ROOT, "src", f),
  );
  for (const file of [...sources, path.join(CONSOLE_ROOT, "index.html"), path.join(CONSOLE_ROOT, "build.ts")]) {
    if ((await stat(file)).mtimeMs > built.mtimeMs) return true;
  }
  return false;
}

/**
 * Builds the console from the sources under test when its build is missing or older than them, as
 * npm ci does. Files run side by side: one builds while the others wait for its lock to go, so no
 * server ever reads a half-written console/dist.
 */
export async function buildConsole(): Promise<void> {
  for (;;) {
    const building = (await stat(LOCK).catch(() => null)) !== null;
    if (!building && !(await stale())) return;
    const lock = await open(LOCK, "wx").catch(() => null);
    if (!lock) {
      // A build that died without unlocking is not waited for forever.
      const held = await stat(LOCK).catch(() => null);
      if (held && Date.now() - held.mtimeMs > 180_000) await rm(LOCK, { force: true });
      await new Promise((resolve) => setTimeout(resolve, 250));
      continue;
    }
    try {
      if (await stale()) await run(process.execPath, ["scripts/build-console.ts"], { timeout: 120_000 });
    } finally {
      await lock.close();
      await rm(LOCK, { force: true });
    }
  }
}

/** Debian's two builds of Chromium (browsers cannot be downloaded here); `CHROMIUM_PATH` overrides either. */
const CHROMIUM = {
  // Chromium's build for automation (`chromium-headless-shell`), the one Playwright itself runs headless:
  // the same engine and media stack without the browser's UI layers, about a fifth less CPU per test file.
  "headless-shell": "/usr/bin/chromium-headless-shell",
  // The browser people run (`chromium`), for the benchmarks' page and playback figures.
  browser: "/usr/bin/chromium",
} as const;

/** Debian's Chromium, headless, reaching nothing but what the test routes. */
export function launchChromium(build: keyof typeof CHROMIUM = "headless-shell"): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? CHROMIUM[build],
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
}
