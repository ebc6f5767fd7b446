import { createDecipheriv } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, type TestApp } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { makeClip, runFfmpeg } from "./support/media-fixtures.ts";
import { type MotoS3, startAppOnMotoS3 } from "./support/moto-s3.ts";
import { createUpload } from "./support/uploads.ts";

const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const VARIANTS = graphql(`query($id: ID!) { video(id: $id) { variants { kind playlistUrl } } }`);

describe("content protection with STORAGE=s3 (moto, presigned segment URLs)", () => {
  let moto: MotoS3;
  let t: TestApp;
  let stop = async () => {};
  beforeAll(async () => {
    ({ t, moto, stop } = await startAppOnMotoS3());
  });
  afterAll(() => stop());

  it("segments are presigned bucket URLs holding ciphertext; key URIs stay on the API, with the token", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 5, audio: false });
    const created = await createUpload(t, "s3 protected", {
      playbackPolicy: "SIGNED",
      contentProtection: { method: "AES_128" },
    });
    const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
    expect((await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(
      200,
    );
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    const rungUrl = new URL(
      (await t.gql(VARIANTS, { id: created.id })).data.video!.variants.find((v) => v.kind === "VIDEO")!.playlistUrl!,
      t.url,
    );
    const text = await (await fetch(rungUrl)).text();
    const keyLine = text.split("\n").find((l) => l.startsWith("#EXT-X-KEY"))!;
    // The key's URI is relative: it resolves to the API, never to the bucket.
    const keyUri = /URI="([^"]+)"/.exec(keyLine)![1]!;
    expect(keyUri).toMatch(/^\.\.\/\.\.\/keys\/0\.key\?token=s\./);
    const keyUrl = new URL(keyUri, rungUrl);
    expect(keyUrl.origin).toBe(t.url);
    const segment = text.split("\n").find((l) => l && !l.startsWith("#"))!;
    expect(new URL(segment).origin).toBe(moto.endpoint);

    const key = Buffer.from(await (await fetch(keyUrl)).arrayBuffer());
    expect(key.byteLength).toBe(16);
    const stored = Buffer.from(await (await fetch(segment)).arrayBuffer());
    const iv = Buffer.from(/IV=0x([0-9a-f]{32})/.exec(keyLine)![1]!, "hex");
    const decipher = createDecipheriv("aes-128-cbc", key, iv);
    const clear = path.join(tmpdir(), `s3-protected-${created.id}.ts`);
    await writeFile(clear, Buffer.concat([decipher.update(stored), decipher.final()]));
    // The bucket's bytes are no MPEG-TS (its sync byte every 188 bytes); decrypted, ffmpeg decodes them.
    expect(stored[0] === 0x47 && stored[188] === 0x47).toBe(false);
    await runFfmpeg(["-v", "error", "-f", "mpegts", "-i", clear, "-f", "null", "-"]);
  });

  it("CENC: init and segments are presigned bucket URLs, the ClearKey licence URI stays on the API", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 5, audio: false });
    const created = await createUpload(t, "s3 cenc", {
      segmentFormat: "FMP4",
      playbackPolicy: "SIGNED",
      contentProtection: { method: "CENC" },
    });
    const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
    expect((await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(
      200,
    );
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    const rungUrl = new URL(
      (await t.gql(VARIANTS, { id: created.id })).data.video!.variants.find((v) => v.kind === "VIDEO")!.playlistUrl!,
      t.url,
    );
    const text = await (await fetch(rungUrl)).text();
    const keyLine = text.split("\n").find((l) => l.startsWith("#EXT-X-KEY"))!;
    const licenceUri = /URI="([^"]+)"/.exec(keyLine)![1]!;
    expect(licenceUri).toMatch(/^\.\.\/\.\.\/keys\/clearkey\?token=s\./);
    const licenceUrl = new URL(licenceUri, rungUrl);
    expect(licenceUrl.origin).toBe(t.url);
    const initUrl = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)![1]!;
    const segment = text.split("\n").find((l) => l && !l.startsWith("#"))!;
    expect(new URL(initUrl).origin).toBe(moto.endpoint);
    expect(new URL(segment).origin).toBe(moto.endpoint);

    const init = Buffer.from(await (await fetch(initUrl)).arrayBuffer());
    const tenc = init.indexOf("tenc");
    const kid = init.subarray(tenc + 12, tenc + 28).toString("base64url");
    const licence = await fetch(licenceUrl, { method: "POST", body: JSON.stringify({ kids: [kid] }) });
    expect(licence.status).toBe(200);
    const { keys } = (await licence.json()) as { keys: { k: string }[] };
    const stored = Buffer.from(await (await fetch(segment)).arrayBuffer());
    const file = path.join(tmpdir(), `s3-cenc-${created.id}.mp4`);
    await writeFile(file, Buffer.concat([init, stored]));
    const key = Buffer.from(keys[0]!.k, "base64url").toString("hex");
    await runFfmpeg(["-v", "error", "-xerror", "-decryption_key", key, "-i", file, "-f", "null", "-"]);
  });
});
