import { builder } from "../builder.ts";
import { parseJobInput } from "../jobs/create-job.ts";
import { JobRef } from "./job.ts";

const TranscodeChunksRef = builder.objectRef<{ total: number; done: number }>("TranscodeChunks").implement({
  description:
    "How far a split transcode is (docs/chunked-transcoding.md): its time chunks, the first (the transcode's own " +
    "run, which makes the video playable) included.",
  fields: (t) => ({
    total: t.exposeInt("total"),
    done: t.exposeInt("done", { description: "Chunks whose segments are published." }),
  }),
});

builder.prismaObjectFields("Video", (t) => ({
  transcodeChunks: t.field({
    type: TranscodeChunksRef,
    nullable: true,
    description:
      "The chunks of the video's split transcode and how many are done; null when its transcode is one run " +
      "(the API splits a source longer than one chunk, CHUNK_SECONDS, only while two or more cpu workers have free slots).",
    select: {
      jobs: {
        where: { OR: [{ kind: "TRANSCODE_CHUNK" }, { children: { some: { kind: "TRANSCODE_CHUNK" } } }] },
        select: { kind: true, status: true },
      },
    },
    resolve: (video) => {
      const chunks = video.jobs.filter((j) => j.kind === "TRANSCODE_CHUNK");
      if (chunks.length === 0) return null;
      const first = video.jobs.find((j) => j.kind === "TRANSCODE");
      const done = chunks.filter((j) => j.status === "SUCCEEDED").length + (first?.status === "SUCCEEDED" ? 1 : 0);
      return { total: chunks.length + 1, done };
    },
  }),
}));

builder.prismaObjectFields("Job", (t) => ({
  chunks: t.field({
    type: [JobRef],
    description:
      "A split transcode's chunk jobs (TRANSCODE_CHUNK: every chunk after the first, which the transcode's own run " +
      "encodes), in source order; empty for every other job and for a transcode that is one run.",
    // Loaded with the jobs the query reads (one statement for a page of them, not one per job), with
    // what the query asks of each chunk (a Job row is read whole: its input gives the order).
    select: (_args, _ctx, nestedSelection) => ({
      kind: true,
      children: nestedSelection({ where: { kind: "TRANSCODE_CHUNK" as const } }),
    }),
    resolve: (job) => {
      if (job.kind !== "TRANSCODE") return [];
      // Each chunk's input read once, not at every comparison of the sort.
      const indexed = job.children.map((chunk) => ({
        chunk,
        index: parseJobInput("TRANSCODE_CHUNK", chunk.input).chunk.index,
      }));
      return indexed.sort((a, b) => a.index - b.index).map(({ chunk }) => chunk);
    },
  }),
}));
