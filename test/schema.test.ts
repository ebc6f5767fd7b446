import { readFileSync } from "node:fs";
import { printSchema } from "graphql";
import { describe, expect, it } from "vitest";
import { JOB_RATE_POINTS, mutationWeight, workOf } from "../src/jobs/mutation-work.ts";
import { schema } from "../src/schema/index.ts";

describe("printed schema", () => {
  it("schema/schema.graphql matches the code (run `npm run schema:print` after changing the schema)", () => {
    expect(readFileSync("schema/schema.graphql", "utf8")).toBe(`${printSchema(schema)}\n`);
  });

  it("keeps the operations front ends and CMSs already send", () => {
    const sdl = printSchema(schema);
    expect(sdl).toMatch(/createUpload\(input: CreateUploadInput!\): CreateUploadResult!/);
    expect(sdl).toMatch(/videoEvents\(videoId: ID!\): VideoEvent!/);
    expect(sdl).toMatch(/video\(id: ID!\): Video\n/);
    // Arguments added later (loudness, watermark, segmentFormat) are optional: the operations clients
    // send (`file` and `title`) stay valid.
    const uploadVideo = schema.getMutationType()?.getFields().uploadVideo;
    const args = Object.fromEntries((uploadVideo?.args ?? []).map((a) => [a.name, String(a.type)]));
    expect(args).toMatchObject({ file: "File!", title: "String" });
    expect(Object.entries(args).filter(([name, type]) => name !== "file" && type.endsWith("!"))).toEqual([]);
    expect(String(uploadVideo?.type)).toBe("UploadVideoResult!");
  });
});

describe("authorization rules", () => {
  it("every query, mutation and subscription field declares the scope it needs", () => {
    const roots = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()];
    const fields = roots.flatMap((root) =>
      Object.values(root?.getFields() ?? {}).map((f) => ({ name: `${root!.name}.${f.name}`, f })),
    );
    expect(fields.length).toBeGreaterThan(10);
    const withoutRule = fields
      .filter(({ f }) => !(f.extensions as { pothosOptions?: { authScopes?: unknown } }).pothosOptions?.authScopes)
      .map((x) => x.name);
    expect(withoutRule).toEqual([]);
  });
});

describe("rate-limit weights", () => {
  it("every mutation field declares the work it sets going (extensions: mutationWork), so it is weighted", () => {
    const fields = Object.values(schema.getMutationType()?.getFields() ?? {});
    expect(fields.length).toBeGreaterThan(10);
    expect(fields.filter((f) => workOf(f) === undefined).map((f) => f.name)).toEqual([]);
  });

  it("a mutation that queues jobs weighs at least the sum of its jobs' points", () => {
    const weights = Object.fromEntries(
      Object.values(schema.getMutationType()!.getFields()).map((f) => [f.name, mutationWeight(workOf(f))]),
    );
    expect(weights).toMatchObject({
      createClip: JOB_RATE_POINTS.TRANSCODE,
      requestStaticRenditions: JOB_RATE_POINTS.STATIC_RENDITIONS,
      createVideoFromUrl: JOB_RATE_POINTS.IMPORT_URL + JOB_RATE_POINTS.TRANSCODE,
      renderManim: JOB_RATE_POINTS.RENDER_MANIM + JOB_RATE_POINTS.TRANSCODE,
      createUpload: JOB_RATE_POINTS.TRANSCODE,
      cancelVideo: 1,
    });
  });
});
