import { readFile } from "node:fs/promises";
import { SignJWT } from "jose";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { TEST_ADMIN_KEY } from "./support/auth.ts";
import { buildConsole, launchChromium, screenshotsDir } from "./support/console.ts";
import { graphql } from "./support/graphql.ts";
import { finalState, createUpload } from "./support/uploads.ts";
import { heldFfmpeg } from "./support/held-ffmpeg.ts";
import { fixturesDir, makeClip } from "./support/media-fixtures.ts";

const JWT_SECRET = "a-shared-hs256-secret-of-at-least-32-chars";
const VIDEO_STATUS = graphql(`query($id: ID!) { video(id: $id) { status } }`);

/** What the queued video's page showed, recorded on every DOM change. */
interface Seen {
  at: number;
  status: string;
  position: string | null;
  text: string | null;
}

describe("the console in real Chromium shows a queued video's place in line, and costs to operators only", () => {
  let t: TestApp;
  let browser: Browser;
  /** The worker's ffmpeg: a video's encode can be held before it starts. */
  let ffmpeg: Awaited<ReturnType<typeof heldFfmpeg>>;
  const contexts: BrowserContext[] = [];

  async function signedIn(credential: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    contexts.push(context);
    // Nothing but the API under test.
    await context.route(
      (url) => url.hostname !== "127.0.0.1",
      (route) => route.abort(),
    );
    const page = await context.newPage();
    await page.goto(`${t.url}/`);
    await page.getByLabel("API key or viewer JWT").fill(credential);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Videos" }).waitFor();
    return page;
  }

  /** Uploads `clip`; with `held`, its encode waits (test/support/held-ffmpeg.ts) until released. */
  async function upload(title: string, clip: string, held = false): Promise<string> {
    const created = await createUpload(t, title);
    if (held) await ffmpeg.hold(created.id);
    const res = await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) });
    expect(res.status).toBe(200);
    return created.id;
  }
  const statusOf = async (id: string): Promise<string> => (await t.gql(VIDEO_STATUS, { id })).data.video!.status;

  beforeAll(async () => {
    await buildConsole();
    ffmpeg = await heldFfmpeg(fixturesDir());
    [t, browser] = await Promise.all([
      startTestApp({ env: { JWT_SECRET }, workerEnv: { FFMPEG_PATH: ffmpeg.path } }),
      launchChromium(),
    ]);
  });
  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await ffmpeg?.releaseAll();
    await t?.stop();
  });

  it("2nd in line with a countdown, then 1st when the busy job ends, then processing and ready", {
    timeout: 300_000,
  }, async () => {
    // The one worker slot (concurrency 1) is kept busy while two short clips queue behind it: the busy
    // video's encode is held (test/support/held-ffmpeg.ts) until the page has shown the queue, and the
    // first in line's until the page has shown 1st, however fast or loaded the machine is (a first in
    // line that encoded at once could take the second from 2nd straight to processing). The clips are
    // queue-cost's, made once per run.
    const [long, short] = await Promise.all([
      makeClip({ width: 640, height: 360, seconds: 8, audio: true }),
      makeClip({ width: 320, height: 180, seconds: 3, audio: true }),
    ]);
    const busy = await upload("busy", long, true);
    const deadline = Date.now() + 120_000;
    while ((await statusOf(busy)) !== "PROCESSING") {
      if (Date.now() > deadline) throw new Error("the busy video never started");
      await new Promise((r) => setTimeout(r, 100));
    }
    const first = await upload("first in line", short, true);
    const second = await upload("second in line", short);

    const viewerJwt = await new SignJWT({ tenant_id: "default" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("viewer-queue")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(JWT_SECRET));
    const [page, viewer] = await Promise.all([signedIn(TEST_ADMIN_KEY), signedIn(viewerJwt)]);

    // At once, while the busy job runs: the viewer's list says each queued row's place, the operator opens the
    // second video's page.
    const rows = async () => {
      await viewer.locator(`[data-video-id="${second}"] [data-testid=queue-position][data-position="2"]`).waitFor();
      await viewer.locator(`[data-video-id="${first}"] [data-testid=queue-position][data-position="1"]`).waitFor();
      expect(await viewer.locator(`[data-video-id="${busy}"] [data-testid=queue-position]`).count()).toBe(0);
      await viewer.screenshot({ path: `${await screenshotsDir()}/videos-queued.png` });
    };
    await Promise.all([rows(), page.goto(`${t.url}/videos/${second}`)]);
    const place = page.getByTestId("queue-position");
    await place.waitFor();
    await page.evaluate(() => {
      const seen: Seen[] = [];
      (window as unknown as { seen: Seen[] }).seen = seen;
      const record = () => {
        const element = document.querySelector("[data-testid=queue-position]");
        seen.push({
          at: Date.now(),
          status: document.querySelector("[data-testid=video-status]")?.textContent ?? "",
          position: element?.getAttribute("data-position") ?? null,
          text: element?.textContent ?? null,
        });
      };
      record();
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    expect(await place.getAttribute("data-position")).toBe("2");
    expect(await place.textContent()).toMatch(/^2nd in line, (~\d+ (s|min)|starting soon)$/);
    // The operator sees the queued job's estimate (rough: the source is not probed yet), no actual cost yet.
    const jobCost = page.getByTestId("job-cost");
    await jobCost.waitFor();
    expect(await jobCost.textContent()).toMatch(/estimated \$0\.\d+ \(rough: from the upload's size\) · actual –/);
    await page.screenshot({ path: `${await screenshotsDir()}/queued-video.png`, fullPage: true });

    // A viewer sees the same place in line and no costs, and the page is not broken by the refusal.
    await viewer.goto(`${t.url}/videos/${second}`);
    await viewer.getByTestId("queue-position").waitFor();
    expect(await viewer.getByTestId("queue-position").textContent()).toMatch(/^(1st|2nd) in line, /);
    await viewer.getByRole("heading", { name: "Jobs" }).waitFor();
    await viewer.waitForLoadState("networkidle");
    expect(await viewer.getByTestId("video-cost").count()).toBe(0);
    expect(await viewer.getByTestId("job-cost").count()).toBe(0);
    expect(await viewer.getByText(/Costs:/).count()).toBe(0);
    expect(await viewer.getByRole("alert").count()).toBe(0);

    // The busy job ends, the first in line starts (and is held): the page moves up to 1st by the
    // QueuePositionEvent alone.
    await ffmpeg.release(busy);
    await place.and(page.locator("[data-position='1']")).waitFor({ timeout: 120_000 });
    expect(await place.textContent()).toMatch(/^1st in line, /);
    await ffmpeg.release(first);
    // Then it starts, and the place in line goes away.
    await page.getByTestId("video-status").getByText("processing").waitFor({ timeout: 120_000 });
    expect(await place.count()).toBe(0);
    await page.getByTestId("video-status").getByText("ready").waitFor({ timeout: 120_000 });

    const seen = await page.evaluate(() => (window as unknown as { seen: Seen[] }).seen);
    const log = JSON.stringify(seen.filter((s, i) => i === 0 || s.text !== seen[i - 1]!.text));
    // 2nd, then 1st, then gone, never back.
    const positions = seen.map((s) => s.position).filter((p, i, all) => p !== all[i - 1]);
    expect(positions, log).toEqual(["2", "1", null]);
    // No reload: the page's queue place changed with the video still queued.
    const movedUp = seen.find((s) => s.position === "1");
    expect(movedUp?.status, log).toBe("queued");
    // Between events the wait counts down: some place showed a number of seconds, then a smaller one.
    const waits = seen
      .map((s) => ({ position: s.position, wait: /~(\d+) s$/.exec(s.text ?? "")?.[1] }))
      .filter((s): s is { position: string; wait: string } => s.wait !== undefined);
    const countedDown = waits.some(
      (s, i) => i > 0 && s.position === waits[i - 1]!.position && Number(s.wait) < Number(waits[i - 1]!.wait),
    );
    expect(countedDown, log).toBe(true);

    // Done: the operator's details show what it cost, measured; the viewer's still show none.
    const videoCost = page.getByTestId("video-cost");
    await videoCost.getByText(/actual \$0\.\d+/).waitFor();
    expect(await page.getByTestId("job-cost").textContent()).toMatch(/estimated \$0\.\d+ · actual \$0\.\d+ \(\d/);
    await viewer.getByTestId("video-status").getByText("ready").waitFor({ timeout: 120_000 });
    expect(await viewer.getByTestId("video-cost").count()).toBe(0);
    expect(await viewer.getByText(/Costs:/).count()).toBe(0);

    for (const id of [busy, first, second]) expect((await finalState(t, id)).status).toBe("READY");
  });
});
