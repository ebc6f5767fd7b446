import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import AxeBuilder from "@axe-core/playwright";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { TEST_ADMIN_KEY } from "./support/auth.ts";
import { buildConsole, launchChromium, screenshotsDir } from "./support/console.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const PHONE = { width: 390, height: 844 };
const LONG_TITLE = "x".repeat(300);
const DELETE = graphql(`mutation($id: ID!) { deleteVideo(id: $id) { __typename } }`);
const CREATE_HOOK = graphql(
  `mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { __typename } }`,
);
const CREATE_HOOK_ID = graphql(`
  mutation($input: CreateWebhookEndpointInput!) {
    createWebhookEndpoint(input: $input) { __typename ... on CreateWebhookEndpointSuccess { endpoint { id } } } }`);
const CREATE_KEY = graphql(`mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { __typename } }`);
const CREATE_STREAM = graphql(`
  mutation($input: CreateLiveStreamInput) {
    createLiveStream(input: $input) { __typename ... on LiveStreamWithKey { streamKey } } }`);
const JOBS = graphql(`
  query($id: ID!) { video(id: $id) {
    all: jobs(first: 20) { edges { node { kind } } }
    top: jobs(first: 20, chunks: false) { edges { node { id kind chunks { chunk { index } } } } } } }`);

/**
 * The console's library (search, filters, sort, bulk delete), its titles, and how it fits a phone,
 * in Chromium. No worker: videos are made with createUpload and put in the states a page needs
 * through the database, so nothing is encoded.
 */
describe("the console's library and its pages at a phone's width, in Chromium", () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let longId: string;

  async function signedIn(viewport = { width: 1280, height: 860 }): Promise<Page> {
    const ctx = await browser.newContext({ viewport });
    await ctx.route(
      (url) => url.hostname !== "127.0.0.1",
      (route) => route.abort(),
    );
    const target = await ctx.newPage();
    await target.goto(`${t.url}/`);
    await target.getByLabel("API key or viewer JWT").fill(TEST_ADMIN_KEY);
    await target.getByRole("button", { name: "Sign in" }).click();
    await target.getByRole("heading", { name: "Videos" }).waitFor();
    return target;
  }

  const cards = () => page.locator(".video-card .title").allTextContents();

  beforeAll(async () => {
    await buildConsole();
    [t, browser] = await Promise.all([startTestApp({ worker: false }), launchChromium()]);
    const db = t.app.services.db;
    for (const [title, tags] of [
      ["alpha lesson", ["math"]],
      ["beta lesson", ["math", "intro"]],
      ["gamma talk", ["intro"]],
      ["delta talk", []],
    ] as const) {
      await createUpload(t, title, { tags: [...tags] });
    }
    const gamma = await db.video.findFirstOrThrow({ where: { title: "gamma talk" } });
    await db.video.update({ where: { id: gamma.id }, data: { source: "MANIM", status: "FAILED", error: "it broke" } });
    // A video with a 300-character unbroken title, its variants and a job whose run has a long command.
    longId = (await createUpload(t, LONG_TITLE)).id;
    // Playable (its master need not exist): the page shows the player and the share section too.
    await db.video.update({
      where: { id: longId },
      data: {
        status: "PROCESSING",
        width: 1920,
        height: 1080,
        playable: true,
        masterKey: `videos/${longId}/hls/master.m3u8`,
      },
    });
    for (const [name, height, bandwidth] of [
      ["1080p", 1080, 5_000_000],
      ["720p", 720, 2_800_000],
      ["360p", 360, 800_000],
    ] as const) {
      await db.variant.create({
        data: {
          videoId: longId,
          name,
          kind: "VIDEO",
          width: (height * 16) / 9,
          height,
          bandwidth,
          codecs: "avc1.640028,mp4a.40.2",
          status: "ENCODING",
          progress: 0.42,
        },
      });
    }
    // One rung READY with what its segments carry (Variant.averageBitRate, peakBitRate).
    await db.variant.updateMany({
      where: { videoId: longId, name: "360p" },
      data: { status: "READY", progress: 1, averageBitRate: 612_400, peakBitRate: 1_701_000 },
    });
    page = await signedIn();
    page.on("dialog", (dialog) => void dialog.accept());
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("searches titles, filters by status, source and tags, sorts, and keeps it all in the URL", async () => {
    await page.getByRole("checkbox", { name: "Select alpha lesson" }).waitFor();
    expect(await cards()).toHaveLength(5);

    await page.getByLabel("Title contains").fill("lesson");
    await page.getByLabel("Title contains").press("Enter");
    await expect.poll(cards).toEqual(["beta lesson", "alpha lesson"]);
    expect(new URL(page.url()).searchParams.get("q")).toBe("lesson");

    await page.getByLabel("Sort").selectOption({ label: "Title, A to Z" });
    await expect.poll(cards).toEqual(["alpha lesson", "beta lesson"]);
    await page.getByLabel("Tags (all of)").fill("intro");
    await page.getByRole("button", { name: "Apply" }).click();
    await expect.poll(cards).toEqual(["beta lesson"]);
    expect(Object.fromEntries(new URL(page.url()).searchParams)).toEqual({
      q: "lesson",
      sort: "TITLE_ASC",
      tags: "intro",
    });

    // A reload shows the same, Back the one before.
    await page.reload();
    await expect.poll(cards).toEqual(["beta lesson"]);
    expect(await page.getByLabel("Title contains").inputValue()).toBe("lesson");
    await page.goBack();
    await expect.poll(cards).toEqual(["alpha lesson", "beta lesson"]);
    expect(await page.getByLabel("Tags (all of)").inputValue()).toBe("");

    await page.getByRole("button", { name: "Clear" }).click();
    await page.getByLabel("Source").selectOption({ label: "manim" });
    await expect.poll(cards).toEqual(["gamma talk"]);
    // Two filters changed in a row, the first one's answer held back until after the second's: the
    // page shows the second's (a late answer to an earlier filter used to overwrite it).
    let heldBack: Promise<void> | null = null;
    await page.route("**/graphql", async (route) => {
      const body = route.request().postData() ?? "";
      const manimOnly = body.includes('"MANIM"');
      if (heldBack === null && body.includes("query Videos") && !manimOnly && !body.includes('"PROCESSING"')) {
        heldBack = new Promise((resolve) => setTimeout(resolve, 1500));
        await heldBack;
      }
      await route.continue();
    });
    await page.getByLabel("Source").selectOption({ label: "All" });
    await page.getByLabel("Status").selectOption({ label: "processing" });
    await expect.poll(cards).toEqual([LONG_TITLE]);
    expect(heldBack).not.toBeNull();
    await heldBack;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await cards()).toEqual([LONG_TITLE]);
    await page.unroute("**/graphql");
    await page.getByRole("button", { name: "Clear" }).click();
    await expect.poll(cards).toHaveLength(5);

    // Creation days, both included, in the browser's time zone.
    const today = await page.evaluate(() => new Date().toLocaleDateString("en-CA"));
    await page.goto(`${t.url}/?to=2000-01-01`);
    await page.getByText("No videos match.").waitFor();
    await page.goto(`${t.url}/?from=${today}&to=${today}&q=talk`);
    await expect.poll(cards).toEqual(["delta talk", "gamma talk"]);
    expect(await page.getByLabel("Created from").inputValue()).toBe(today);
    // The API's refusal of a search is shown as it is, with no stale results beside it.
    await page.getByLabel("Title contains").fill("ab");
    await page.getByLabel("Title contains").press("Enter");
    await page
      .getByRole("alert")
      .getByText(/titleContains/)
      .waitFor();
    expect(await cards()).toEqual([]);
  });

  it("filters by metadata (every key=value given, through the API's videos filter), kept in the URL", async () => {
    const db = t.app.services.db;
    await db.video.updateMany({
      where: { title: { in: ["alpha lesson", "beta lesson"] } },
      data: { metadata: { course: "algebra 1", level: "2" } },
    });
    await db.video.updateMany({
      where: { title: "beta lesson" },
      data: { metadata: { course: "algebra 1", level: "3" } },
    });
    try {
      await page.goto(`${t.url}/`);
      await expect.poll(cards).toHaveLength(5);
      await page.getByLabel("Metadata (all of)").fill("course=algebra 1");
      await page.getByLabel("Metadata (all of)").press("Enter");
      await expect.poll(cards).toEqual(["beta lesson", "alpha lesson"]);
      await page.getByLabel("Metadata (all of)").fill(" course = algebra 1 ; level=3 ");
      await page.getByRole("button", { name: "Apply" }).click();
      await expect.poll(cards).toEqual(["beta lesson"]);
      expect(new URL(page.url()).searchParams.get("meta")).toBe("course = algebra 1 ; level=3");
      await page.reload();
      await expect.poll(cards).toEqual(["beta lesson"]);
      expect(await page.getByLabel("Metadata (all of)").inputValue()).toBe("course = algebra 1 ; level=3");
      // A value is matched exactly: no video has level 2 and course algebra 2.
      await page.goto(`${t.url}/?meta=${encodeURIComponent("course=algebra 2")}`);
      await page.getByText("No videos match.").waitFor();
      // An entry without "=" is refused with a message, and no results beside it.
      await page.goto(`${t.url}/?meta=course`);
      await page
        .getByRole("alert")
        .getByText(/key=value/)
        .waitFor();
      expect(await cards()).toEqual([]);
    } finally {
      await db.video.updateMany({
        where: { title: { in: ["alpha lesson", "beta lesson"] } },
        data: { metadata: {} },
      });
    }
  });

  it("a video's analytics: rendition shares add up to 100 %, and a chart of zeros says its top is 0", async () => {
    const db = t.app.services.db;
    const { tenantId } = await db.video.findUniqueOrThrow({ where: { id: longId } });
    const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000);
    await db.analyticsHour.create({
      data: { videoId: longId, tenantId, hour, views: 3, watchMs: 100_000n, startupHistogram: [] },
    });
    // 73.5 % and 26.5 %: floored, 73 % + 26 %.
    await db.analyticsHeightHour.createMany({
      data: [
        { videoId: longId, tenantId, hour, height: 1080, watchMs: 73_500n },
        { videoId: longId, tenantId, hour, height: 720, watchMs: 26_500n },
      ],
    });
    try {
      await page.goto(`${t.url}/videos/${longId}`);
      const figures = page.getByTestId("video-analytics");
      await expect.poll(() => figures.getByTestId("analytics-views").textContent()).toBe("3");
      expect(await figures.locator("dt:text-is('Top renditions') + dd").textContent()).toBe("1080p 74%, 720p 26%");
      const captions = await page.locator(".analytics figcaption").allTextContents();
      expect(captions).toContain("Rebuffering per day (max 0%)");
      expect(captions).toContain("Views per day (max 3)");
      // No view had a startup time: no bar, and the caption says so.
      expect(captions).toContain("Startup p95 per day (no data)");
    } finally {
      await db.analyticsHeightHour.deleteMany({ where: { videoId: longId } });
      await db.analyticsHour.deleteMany({ where: { videoId: longId } });
    }
  });

  it("pages on the connection's cursors, the sort and filters kept", async () => {
    const db = t.app.services.db;
    const tenantId = (await db.video.findFirstOrThrow({ where: { title: "alpha lesson" } })).tenantId;
    await db.video.createMany({
      data: Array.from({ length: 13 }, (_, i) => ({ tenantId, title: `page filler ${String(i).padStart(2, "0")}` })),
    });
    try {
      await page.goto(`${t.url}/?q=filler&sort=TITLE_ASC`);
      await expect.poll(async () => (await cards()).length).toBe(12);
      expect((await cards())[0]).toBe("page filler 00");
      await page.getByRole("button", { name: "Next page" }).click();
      await expect.poll(cards).toEqual(["page filler 12"]);
      expect(new URL(page.url()).searchParams.get("after")).toBeTruthy();
      expect(await page.getByRole("button", { name: "Next page" }).isDisabled()).toBe(true);
      await page.getByRole("button", { name: "Previous page" }).click();
      await expect.poll(async () => (await cards()).at(-1)).toBe("page filler 11");
      expect(Object.keys(Object.fromEntries(new URL(page.url()).searchParams)).sort()).toEqual(["before", "q", "sort"]);
    } finally {
      await db.video.deleteMany({ where: { title: { startsWith: "page filler" } } });
    }
  });

  it("selects all on a page and deletes the selection after a confirmation, showing each refusal", async () => {
    await page.goto(`${t.url}/?q=lesson`);
    await expect.poll(cards).toEqual(["beta lesson", "alpha lesson"]);
    const all = page.getByRole("checkbox", { name: "Select all on this page" });
    await all.check();
    expect(await page.getByRole("checkbox", { name: "Select beta lesson" }).isChecked()).toBe(true);
    await page.getByRole("checkbox", { name: "Select beta lesson" }).uncheck();
    await expect.poll(() => all.evaluate((box: HTMLInputElement) => box.indeterminate)).toBe(true);
    await all.check();

    // While the confirmation is open, another client deletes one of them: that one is refused.
    const alpha = (await t.app.services.db.video.findFirstOrThrow({ where: { title: "alpha lesson" } })).id;
    page.removeAllListeners("dialog");
    page.once("dialog", async (dialog) => {
      expect(dialog.message()).toBe("Delete 2 videos and all their media?");
      await t.gql(DELETE, { id: alpha });
      await dialog.accept();
    });
    await page.getByRole("button", { name: "Delete selected (2)" }).click();
    await page.getByTestId("bulk-result").getByText("Deleted 1 of 2.").waitFor();
    await page
      .getByRole("alert")
      .getByText(/^alpha lesson: /)
      .waitFor();
    await expect.poll(cards).toEqual([]);
    expect(await t.app.services.db.video.count({ where: { title: { endsWith: "lesson" } } })).toBe(0);
    page.on("dialog", (dialog) => void dialog.accept());
  });

  it("names each route in the document title", async () => {
    for (const [path, title] of [
      ["/", "Videos · videograph"],
      ["/upload", "Upload · videograph"],
      ["/sources", "Sources · videograph"],
      ["/live", "Live · videograph"],
      ["/webhooks", "Webhooks · videograph"],
      ["/keys", "API keys · videograph"],
      [`/videos/${longId}`, `${LONG_TITLE} · videograph`],
    ]) {
      await page.goto(`${t.url}${path}`);
      await expect.poll(() => page.title(), { message: path }).toBe(title);
    }
    // Client-side navigation too.
    await page.getByRole("link", { name: "Webhooks" }).click();
    await expect.poll(() => page.title()).toBe("Webhooks · videograph");
  });

  it("nothing is wider than a 390 px phone on any route, with a 300-character unbroken title", async () => {
    const hook = await t.gql(CREATE_HOOK, { input: { url: `http://127.0.0.1:9/${"h".repeat(300)}` } });
    const key = await t.gql(CREATE_KEY, {
      input: { name: "k".repeat(100), scopes: ["VIDEOS_READ"] },
    });
    const stream = await t.gql(CREATE_STREAM, {
      input: { title: "l".repeat(300) },
    });
    expect([hook.data.createWebhookEndpoint.__typename, key.data.createApiKey.__typename]).toEqual([
      "CreateWebhookEndpointSuccess",
      "CreateApiKeySuccess",
    ]);
    expect(expectTypename(stream.data.createLiveStream, "LiveStreamWithKey").streamKey).toMatch(/^lsk_/);
    const phone = await signedIn(PHONE);
    for (const path of [
      "/",
      "/upload",
      "/sources",
      "/live",
      "/webhooks",
      "/keys",
      `/videos/${longId}`,
      `/watch/${longId}`,
    ]) {
      await phone.goto(`${t.url}${path}`);
      if (path.startsWith("/videos/")) await phone.getByRole("cell", { name: "720p", exact: true }).waitFor();
      if (path === "/") await phone.locator(".video-card .title", { hasText: LONG_TITLE }).waitFor();
      if (path === "/webhooks") await phone.getByText("h".repeat(300), { exact: false }).first().waitFor();
      if (path === "/keys") await phone.getByText("k".repeat(100)).first().waitFor();
      if (path === "/live") await phone.getByText("l".repeat(300)).first().waitFor();
      await phone.locator("main").waitFor();
      const widths = await phone.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        wider: [...document.querySelectorAll("body *")]
          // Tables and code scroll in their own box.
          .filter((e) => e.getBoundingClientRect().right > 391 && !e.closest("table, pre"))
          .map((e) => `${e.tagName}.${e.className}`)
          .slice(0, 5),
      }));
      expect(widths, path).toEqual({ page: 390, wider: [] });
    }
    await phone.context().close();
  });

  // One test per width: eighteen pages audited in one took over its 90 s on a loaded 2-core CI host.
  it.each([{ width: 1280, height: 860 }, PHONE])(
    "axe-core finds no serious or critical WCAG 2 A/AA violation on any route, at $width px",
    async (viewport) => {
      const found: string[] = [];
      const audit = async (target: Page, label: string) => {
        // Legacy mode: axe.run() in the page itself. The default runs axe per frame and joins the
        // results in a new blank page each time (a new renderer per audit); the console's pages have
        // no frames, so both find the same.
        expect(target.frames(), label).toHaveLength(1);
        const { violations } = await new AxeBuilder({ page: target })
          .withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"])
          .setLegacyMode()
          .analyze();
        for (const v of violations)
          if (v.impact === "serious" || v.impact === "critical")
            found.push(`${label}: ${v.id} (${v.impact}) at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
      };
      const signedOut = await (await browser.newContext({ viewport })).newPage();
      await signedOut.goto(`${t.url}/`);
      await signedOut.getByLabel("API key or viewer JWT").waitFor();
      await audit(signedOut, `sign-in at ${viewport.width} px`);
      await signedOut.goto(`${t.url}/watch/${longId}`);
      await signedOut.locator("video").waitFor();
      await audit(signedOut, `watch page signed out at ${viewport.width} px`);
      await signedOut.context().close();

      const target = await signedIn(viewport);
      for (const path of ["/", "/upload", "/sources", "/live", "/webhooks", "/keys", `/videos/${longId}`]) {
        await target.goto(`${t.url}${path}`);
        await target.locator("main").waitFor();
        if (path.startsWith("/videos/")) await target.getByRole("cell", { name: "720p", exact: true }).waitFor();
        if (path === "/") await target.locator(".video-card .title", { hasText: LONG_TITLE }).waitFor();
        if (path === "/live") await target.locator('article, p:has-text("No live streams yet.")').first().waitFor();
        await audit(target, `${path} at ${viewport.width} px`);
      }
      await target.context().close();
      expect(found).toEqual([]);
    },
  );

  it("signs in with the line npm start prints (export VIDEOGRAPH_KEY=vg_…), quoted or not", async () => {
    for (const pasted of [`export VIDEOGRAPH_KEY=${TEST_ADMIN_KEY}`, ` VIDEOGRAPH_KEY="${TEST_ADMIN_KEY}" `]) {
      const target = await (await browser.newContext()).newPage();
      await target.goto(`${t.url}/`);
      await target.getByLabel("API key or viewer JWT").fill(pasted);
      await target.getByRole("button", { name: "Sign in" }).click();
      await target.getByRole("heading", { name: "Videos" }).waitFor();
      expect(await target.evaluate(() => sessionStorage.getItem("videograph.authorization"))).toBe(
        `Bearer ${TEST_ADMIN_KEY}`,
      );
      await target.context().close();
    }
  });

  it.each([{ width: 1440, height: 900 }, PHONE])(
    "the keys page shows every key's Rotate and Revoke in sight, not scrolled off, at $width px",
    async (viewport) => {
      const name = `${viewport.width} ${"n".repeat(95)}`;
      const made = await t.gql(CREATE_KEY, {
        input: { name, scopes: ["VIDEOS_READ", "VIDEOS_WRITE", "JOBS_ADMIN", "WEBHOOKS_ADMIN"], expiresInDays: 30 },
      });
      expect(made.data.createApiKey.__typename).toBe("CreateApiKeySuccess");
      const target = await signedIn(viewport);
      await target.goto(`${t.url}/keys`);
      const row = target.getByRole("row").filter({ hasText: name });
      await row.getByRole("button", { name: `Revoke ${name}` }).waitFor();
      expect(
        await target.evaluate(() => ({
          page: document.documentElement.scrollWidth,
          table: [...document.querySelectorAll("table")].map((t) => t.scrollWidth - t.clientWidth),
        })),
      ).toEqual({ page: viewport.width, table: [0] });
      for (const button of await target.locator("table button").all()) {
        // Within the screen's width, and the topmost element at its centre once scrolled to (nothing covers it).
        await button.evaluate((b) => b.scrollIntoView({ block: "center" }));
        const box = (await button.boundingBox())!;
        expect(box.x, String(await button.getAttribute("aria-label"))).toBeGreaterThanOrEqual(0);
        expect(box.x + box.width, String(await button.getAttribute("aria-label"))).toBeLessThanOrEqual(viewport.width);
        expect(
          await button.evaluate((b) => {
            const r = b.getBoundingClientRect();
            return b.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2));
          }),
        ).toBe(true);
      }
      await target.screenshot({ path: `${await screenshotsDir()}/keys-${viewport.width}.png`, fullPage: true });
      // It works where it is: a trial click (no scrolling by Playwright), then a real one.
      const revoke = row.getByRole("button", { name: `Revoke ${name}` });
      await revoke.click({ trial: true });
      await revoke.click();
      await row.getByRole("cell", { name: "revoked" }).waitFor();
      await target.context().close();
    },
  );

  it("on a phone the watch page's player is 16:9, not the screen's height, and its controls sit below the picture on a solid background", async () => {
    const phone = await (await browser.newContext({ viewport: PHONE })).newPage();
    await phone.goto(`${t.url}/watch/${longId}?muted=1&loop=1&t=4`);
    const player = phone.getByTestId("player");
    await player.waitFor();
    const box = (await player.boundingBox())!;
    expect(box.width).toBe(390);
    expect(box.height).toBeLessThanOrEqual(Math.ceil((390 * 9) / 16));
    const controls = (await phone.locator(".player-controls").boundingBox())!;
    expect(controls.y).toBeGreaterThanOrEqual(box.y + box.height);
    // The label's contrast on the bar's own (opaque) background.
    const contrast = await phone.getByTestId("playing-level").evaluate((label) => {
      const rgb = (color: string) => color.match(/[\d.]+/g)!.map(Number);
      const luminance = ([r, g, b]: number[]) => {
        const [R, G, B] = [r!, g!, b!].map((c) => {
          const s = c / 255;
          return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * R! + 0.7152 * G! + 0.0722 * B!;
      };
      const background = rgb(getComputedStyle(label.closest(".player-controls")!).backgroundColor);
      if (background.length === 4 && background[3] !== 1) return 0;
      const [a, b] = [luminance(rgb(getComputedStyle(label).color)), luminance(background)];
      return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    });
    expect(contrast).toBeGreaterThanOrEqual(4.5);
    // The embed snippet's options reach the player.
    expect(await player.evaluate((v: HTMLVideoElement) => ({ muted: v.muted, loop: v.loop }))).toEqual({
      muted: true,
      loop: true,
    });
    await phone.context().close();
  });

  it("the embed snippet fills its container at 16:9, names the video, and carries the chosen options", async () => {
    await page.goto(`${t.url}/videos/${longId}`);
    // The variants say what a READY rung carries, and the bound of one still encoding.
    const variants = page.getByRole("table", { name: "Variants" });
    const row = (rung: string) => variants.getByRole("row").filter({ hasText: rung }).innerText();
    expect(await row("360p")).toContain("612 kb/s (peak 1,701 kb/s)");
    expect(await row("720p")).toContain("up to 2,800 kb/s");
    const snippet = page.getByLabel(/^Embed snippet/);
    const html = () => snippet.inputValue();
    await snippet.waitFor();
    expect(await html()).toContain('style="position:relative;width:100%;aspect-ratio:16/9"');
    expect(await html()).toContain(`title="${LONG_TITLE}"`);
    expect(await html()).not.toMatch(/width="640"|height="360"/);
    await page.getByLabel(/^Autoplay/).check();
    await page.getByLabel("Loop").check();
    await page.getByLabel("Start at (seconds)").fill("12");
    const src = new URL((await html()).match(/src="([^"]+)"/)![1]!.replaceAll("&amp;", "&"));
    expect(src.pathname).toBe(`/watch/${longId}`);
    expect(Object.fromEntries(src.searchParams)).toEqual({ autoplay: "1", loop: "1", t: "12" });
    // In a frame of the snippet's shape the player fits, controls included.
    const frame = await (await browser.newContext({ viewport: { width: 640, height: 360 } })).newPage();
    await frame.goto(src.href);
    const player = frame.getByTestId("player");
    await player.waitFor();
    expect(
      await player.evaluate((v: HTMLVideoElement) => ({ muted: v.muted, loop: v.loop, autoplay: v.autoplay })),
    ).toEqual({
      muted: true,
      loop: true,
      autoplay: true,
    });
    expect(await frame.evaluate(() => document.documentElement.scrollHeight)).toBeLessThanOrEqual(360);
    await frame.context().close();
  });

  it("the Choose files control shows the keyboard focus of its hidden file input", async () => {
    await page.goto(`${t.url}/upload`);
    const input = page.getByTestId("file-input");
    await input.waitFor({ state: "attached" });
    // Keyboard focus: Tab from the heading's side until the file input has it.
    await page.getByRole("heading", { name: "Upload" }).click();
    for (let i = 0; i < 5 && !(await input.evaluate((e) => e === document.activeElement)); i++) {
      await page.keyboard.press("Tab");
    }
    expect(await input.evaluate((e) => e === document.activeElement)).toBe(true);
    const outline = await page
      .locator("label.button", { has: input })
      .evaluate((label) => getComputedStyle(label).outlineStyle);
    expect(outline).toBe("solid");
  });

  it("the webhooks table follows a resent delivery to its answer without a reload", async () => {
    // The receiver answers after a second: the page's first read after Resend sees it pending.
    const receiver = createServer((req, res) => {
      req.resume();
      req.on("end", () => setTimeout(() => res.end("ok"), 1000));
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = receiver.address() as AddressInfo;
      const created = await t.gql(CREATE_HOOK_ID, { input: { url: `http://127.0.0.1:${port}/resend-hook` } });
      const endpointId = expectTypename(created.data.createWebhookEndpoint, "CreateWebhookEndpointSuccess").endpoint.id;
      await t.app.services.db.webhookDelivery.create({
        data: {
          endpointId,
          eventId: crypto.randomUUID(),
          eventType: "video.ready",
          payload: { type: "video.ready" },
          status: "FAILED",
          attemptCount: 1,
          nextAttemptAt: null,
          giveUpAt: new Date(Date.now() + 3600_000),
          lastStatusCode: 500,
        },
      });
      await page.goto(`${t.url}/webhooks`);
      const row = page
        .getByRole("article", { name: `Endpoint http://127.0.0.1:${port}/resend-hook` })
        .getByRole("row")
        .filter({ hasText: "video_ready" });
      await row.getByRole("cell", { name: "failed", exact: true }).waitFor();
      await row.getByRole("button", { name: "Resend" }).click();
      await row.getByRole("cell", { name: "delivered", exact: true }).waitFor({ timeout: 10_000 });
      await row.getByRole("cell", { name: "2", exact: true }).waitFor();
    } finally {
      receiver.close();
    }
  });

  it("a failed quiz render keeps the form: Edit and retry opens it as it was sent", async () => {
    await page.goto(`${t.url}/sources`);
    const csv = page.getByLabel("Questions (CSV: question, four choices, answer A–D)");
    const questions = "Which is prime?,4,6,7,9,C\nWhich is even?,3,5,8,9,C";
    await csv.fill(questions);
    await page.getByLabel("Seconds per question").fill("2.5");
    await page.getByRole("button", { name: "Render quiz" }).click();
    await page.waitForURL(/\/videos\/[\w-]+$/);
    const id = new URL(page.url()).pathname.split("/").pop()!;
    await t.app.services.db.video.update({ where: { id }, data: { status: "FAILED", error: "espeak-ng failed" } });
    await page.reload();
    await page.getByRole("link", { name: "Edit and retry" }).click();
    await page.waitForURL(/\/sources#quiz-csv$/);
    await expect.poll(() => csv.inputValue()).toBe(questions);
    expect(await page.getByLabel("Seconds per question").inputValue()).toBe("2.5");
    expect(await csv.evaluate((area) => area === document.activeElement)).toBe(true);
  });

  it("a job's status follows the job: a failed video's job no longer reads running", async () => {
    const db = t.app.services.db;
    const { id } = await createUpload(t, "fails while you watch");
    const job = await db.job.create({
      data: { videoId: id, kind: "TRANSCODE", status: "RUNNING", startedAt: new Date() },
    });
    await db.video.update({ where: { id }, data: { status: "FAILED", error: "the encoder died" } });
    await page.goto(`${t.url}/videos/${id}`);
    const summary = page.locator("details.job summary");
    await summary.getByText(/running/).waitFor();
    await db.job.update({ where: { id: job.id }, data: { status: "FAILED", error: "the encoder died" } });
    await summary.getByText(/failed/).waitFor({ timeout: 10_000 });
  });

  it(`lists a split transcode's chunk jobs under it, in source order with the part each encodes and how many \
are done; they leave the video's other jobs on the page`, async () => {
    const db = t.app.services.db;
    const { id } = await createUpload(t, "split in chunks");
    // The video's oldest job, then its transcode, split in 25: 24 chunk jobs after it, queued last to first.
    const older = await db.job.create({ data: { videoId: id, kind: "STATIC_RENDITIONS", status: "SUCCEEDED" } });
    const parent = await db.job.create({ data: { videoId: id, kind: "TRANSCODE", status: "SUCCEEDED" } });
    const rung = { name: "360p", kind: "VIDEO", width: 640, height: 360, bandwidth: 1, codecs: "avc1.64001e" };
    for (let index = 24; index >= 1; index--) {
      const chunk = { index, fromSegment: index * 15 - 13, toSegment: index * 15 + 2, fromSeconds: index * 60 - 55 };
      await db.job.create({
        data: {
          videoId: id,
          kind: "TRANSCODE_CHUNK",
          parentId: parent.id,
          status: index <= 2 ? "SUCCEEDED" : index === 3 ? "RUNNING" : "QUEUED",
          // As if handed to the transport already: this app's dispatcher leaves them be.
          dispatchedAt: new Date(),
          input: { chunk: { ...chunk, toSeconds: chunk.fromSeconds + 60 }, ladder: [rung] },
        },
      });
    }
    // The API: every job by default (the newest 20: chunks only), or the chunks under their transcode.
    // The chunks come with the jobs the query reads, not from a statement per transcode. (The
    // dispatcher's sweeps, for jobs silent since a time or dispatched before one, may fall in the
    // same moment: they are not the query's.)
    const jobReads: unknown[] = [];
    const jobs = db.job as unknown as { findMany: (...args: unknown[]) => Promise<unknown> };
    const findMany = jobs.findMany;
    const sweep = (where: Record<string, unknown>) => "heartbeatAt" in where || "dispatchedAt" in where;
    jobs.findMany = (...args: unknown[]) => {
      const read = args[0] as { where?: Record<string, unknown> } | undefined;
      if (!sweep(read?.where ?? {})) jobReads.push(read);
      return findMany.apply(db.job, args);
    };
    const { data } = await t.gql(JOBS, { id }).finally(() => {
      jobs.findMany = findMany;
    });
    expect(jobReads).toEqual([]);
    expect(new Set(data.video!.all.edges.map((e) => e.node.kind))).toEqual(new Set(["TRANSCODE_CHUNK"]));
    const top = data.video!.top.edges.map((e) => e.node);
    expect(top.map((j) => j.id)).toEqual([parent.id, older.id]);
    expect(top[0]!.chunks.map((c) => c.chunk!.index)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(top[1]!.chunks).toEqual([]);

    await page.goto(`${t.url}/videos/${id}`);
    const topLevel = page.locator(".operators > details.job > summary");
    await topLevel.first().waitFor();
    expect((await topLevel.allInnerTexts()).map((text) => text.split(" ")[0])).toEqual([
      "transcode",
      "static_renditions",
    ]);
    await topLevel.first().click();
    const chunks = page.getByRole("region", { name: "Chunks" });
    await chunks.getByRole("heading", { name: "Chunks · 3 of 25 done (the first is this job's own run)" }).waitFor();
    const summaries = await chunks.locator("details.job > summary").allInnerTexts();
    expect(summaries).toHaveLength(24);
    expect(summaries.slice(0, 3)).toEqual([
      expect.stringMatching(/^transcode_chunk 1 \(0:05–1:05\) · succeeded/i),
      expect.stringMatching(/^transcode_chunk 2 \(1:05–2:05\) · succeeded/i),
      expect.stringMatching(/^transcode_chunk 3 \(2:05–3:05\) · running/i),
    ]);
    expect(summaries.at(-1)).toMatch(/^transcode_chunk 24 \(23:05–24:05\) · queued/i);
  });
});
