// Page weight (`npm run bench:pages`): starts an API process here (a fresh database, no worker) and
// loads GraphiQL and the console's sign-in page in headless Chromium, each N times with a fresh cache,
// on the loopback and on a throttled link (--mbps, default 20 Mbit/s, 20 ms), and prints per page the
// bytes on the wire and as decoded, and the median time until the page is usable (GraphiQL's editor
// shown; the console's sign-in form), beside the goal (GraphiQL under 2 s).
//   npm run bench:pages                    3 loads of each page on each link
//   npm run bench:pages -- --runs=5 --mbps=10
//   DATABASE_URL=postgresql://…            uses that server (a fresh database in it)
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const USAGE = `usage: npm run bench:pages -- [--runs=N] [--mbps=M]
Loads GraphiQL and the console's sign-in page N times each in headless Chromium, from an API started
here (GraphiQL also a second time in the same profile), on the loopback and on a link throttled to M Mbit/s with 20 ms latency, and prints the bytes sent
and the median time until each page is usable, beside the goal. Defaults: 3 runs, 20 Mbit/s.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: { runs: { type: "string", default: "3" }, mbps: { type: "string", default: "20" } },
});
const runs = Number(flags.runs);
const mbps = Number(flags.mbps);
if (!Number.isInteger(runs) || runs < 1 || !(mbps > 0)) usageError(USAGE, "--runs is a whole number ≥ 1, --mbps > 0");
// The bench's machinery is imported once the command line is read: --help needs none of it.
const [{ launchChromium }, { startApiProcess, stopAllProcesses }, { benchDatabase }] = await Promise.all([
  import("../test/support/console.ts"),
  import("../test/support/processes.ts"),
  import("./support/stack.ts"),
]);

const log = (message: string) => process.stderr.write(`[bench:pages] ${message}\n`);
const dir = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-pages-"));
const database = await benchDatabase(path.join(dir, "postgres"), "videograph_pages", log);
const browser = await launchChromium("browser");
try {
  const api = await startApiProcess("api", { DATABASE_URL: database.url, DATA_DIR: dir, GRAPHIQL: "true" });
  // "next visit": the page loaded a second time in the same browser profile (its cache and compiled
  // code kept); only that load is timed and counted.
  // "uncompressed": the browser asks for no compression (Accept-Encoding: identity), as before the
  // API compressed anything: the same page's bytes as they are, in the same run.
  const pages = [
    { name: "GraphiQL", path: "/graphql", ready: ".graphiql-container", goalMs: 2000, identity: false },
    {
      name: "  next visit",
      path: "/graphql",
      ready: ".graphiql-container",
      goalMs: 2000,
      identity: false,
      repeat: true,
    },
    { name: "  uncompressed", path: "/graphql", ready: ".graphiql-container", goalMs: 2000, identity: true },
    { name: "console sign-in", path: "/", ready: "form", goalMs: null, identity: false },
    { name: "  uncompressed", path: "/", ready: "form", goalMs: null, identity: true },
  ];
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(`Chromium, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ${new Date().toISOString()}`);
  console.log("page              link          wire bytes   decoded bytes   usable after (median of %d)   goal", runs);
  for (const link of ["loopback", `${mbps} Mbit/s`] as const) {
    for (const target of pages) {
      const times: number[] = [];
      let wire = 0;
      let decoded = 0;
      for (let i = 0; i < runs; i++) {
        const context = await browser.newContext();
        const page: Page = await context.newPage();
        const cdp = await context.newCDPSession(page);
        await cdp.send("Network.enable");
        await cdp.send("Network.setCacheDisabled", { cacheDisabled: !("repeat" in target) });
        if ("repeat" in target) {
          await page.goto(`${api.url}${target.path}`);
          await page.locator(target.ready).first().waitFor({ timeout: 60_000 });
          // Let Chromium write its code cache before the timed visit.
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
        if (target.identity)
          await cdp.send("Network.setExtraHTTPHeaders", { headers: { "accept-encoding": "identity" } });
        if (link !== "loopback") {
          const bytesPerSecond = (mbps * 1_000_000) / 8;
          await cdp.send("Network.emulateNetworkConditions", {
            offline: false,
            latency: 20,
            downloadThroughput: bytesPerSecond,
            uploadThroughput: bytesPerSecond,
          });
        }
        wire = 0;
        decoded = 0;
        cdp.on("Network.loadingFinished", (e: { encodedDataLength: number }) => (wire += e.encodedDataLength));
        cdp.on("Network.dataReceived", (e: { dataLength: number }) => (decoded += e.dataLength));
        const started = performance.now();
        await page.goto(`${api.url}${target.path}`, { waitUntil: "commit" });
        await page.locator(target.ready).first().waitFor({ timeout: 60_000 });
        times.push(performance.now() - started);
        await context.close();
      }
      const goal = target.goalMs === null ? "–" : `< ${(target.goalMs / 1000).toFixed(1)} s`;
      console.log(
        `${target.name.padEnd(17)} ${link.padEnd(13)} ${String(wire).padStart(10)}   ${String(decoded).padStart(13)}   ` +
          `${(median(times) / 1000).toFixed(2).padStart(8)} s${" ".repeat(21)}${goal}`,
      );
    }
  }
} finally {
  await browser.close();
  await stopAllProcesses();
  await database.drop();
  await rm(dir, { recursive: true, force: true });
}
