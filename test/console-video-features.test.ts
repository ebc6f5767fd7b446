import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { TEST_ADMIN_KEY } from "./support/auth.ts";
import { buildConsole, launchChromium } from "./support/console.ts";
import { createUpload } from "./support/uploads.ts";

const DETAILS = `query ($id: ID!) { video(id: $id) { title description tags externalId metadata { key value } } }`;

/**
 * The API's features on the console's video page, through the real UI in Chromium, each checked by
 * reading the API's state afterwards. No worker: videos are made with createUpload.
 */
describe("the console's video page edits what the API lets a CMS change", () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    await buildConsole();
    [t, browser] = await Promise.all([startTestApp({ worker: false }), launchChromium()]);
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    await ctx.route(
      (url) => url.hostname !== "127.0.0.1",
      (route) => route.abort(),
    );
    page = await ctx.newPage();
    await page.goto(`${t.url}/`);
    await page.getByLabel("API key or viewer JWT").fill(TEST_ADMIN_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Videos" }).waitFor();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("edits title, description, tags and metadata (updateVideo), and shows a refusal beside its field", async () => {
    const { id } = await createUpload(t, "before", { tags: ["old"], metadata: [{ key: "drop", value: "me" }] });
    await page.goto(`${t.url}/videos/${id}`);
    await page.getByLabel("Title", { exact: true }).waitFor();
    expect(await page.getByLabel("Tags (comma-separated)").inputValue()).toBe("old");
    expect(await page.getByLabel("Key 1").inputValue()).toBe("drop");

    await page.getByLabel("Title", { exact: true }).fill("after");
    await page.getByLabel("Description").fill("two\nlines");
    await page.getByLabel("Tags (comma-separated)").fill("Math, intro ");
    await page.getByRole("button", { name: "Remove metadata entry 1" }).click();
    await page.getByRole("button", { name: "Add metadata entry" }).click();
    await page.getByLabel("Key 1").fill("course");
    await page.getByLabel("Value 1").fill("algebra 1");
    await page.getByRole("button", { name: "Save details" }).click();
    await page.getByText("Saved.").waitFor();
    expect((await t.gql(DETAILS, { id })).data.video).toEqual({
      title: "after",
      description: "two\nlines",
      tags: ["math", "intro"],
      externalId: null,
      metadata: [{ key: "course", value: "algebra 1" }],
    });
    // The page's heading follows the saved title, and the form shows what the API stored.
    await page.getByRole("heading", { name: "after", level: 1 }).waitFor();
    expect(await page.getByLabel("Tags (comma-separated)").inputValue()).toBe("math, intro");

    // A refusal (a tag over 64 characters) is shown under the tags, which name it, and nothing changes.
    await page.getByLabel("Tags (comma-separated)").fill(`ok, ${"x".repeat(65)}`);
    await page.getByRole("button", { name: "Save details" }).click();
    const tags = page.getByLabel("Tags (comma-separated)");
    await expect.poll(() => tags.getAttribute("aria-invalid")).toBe("true");
    const error = page.locator(`#${await tags.getAttribute("aria-describedby")}`);
    expect(await error.textContent()).toMatch(/longer than 64 characters/);
    expect(await page.getByLabel("Title", { exact: true }).getAttribute("aria-invalid")).toBeNull();
    expect((await t.gql(DETAILS, { id })).data.video.tags).toEqual(["math", "intro"]);
    // Nothing is wider than the phone.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });
});
