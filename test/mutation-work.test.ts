import { graphql, GraphQLID, GraphQLObjectType, GraphQLSchema, GraphQLString } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJob } from "../src/jobs/create-job.ts";
import { mutationWork, withDeclaredMutationWork } from "../src/jobs/mutation-work.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { createUpload } from "./support/uploads.ts";

describe("a mutation queues only the jobs it declares (so it is charged for them)", () => {
  let t: TestApp;
  let schema: GraphQLSchema;
  beforeAll(async () => {
    t = await startTestApp({ worker: false });
    const db = t.app.services.db;
    const queueTranscode = {
      type: GraphQLID,
      args: { videoId: { type: GraphQLID } },
      resolve: async (_root: unknown, args: { videoId: string }) =>
        (
          await createJob(
            db,
            { videoId: args.videoId, kind: "TRANSCODE", input: {}, maxAttempts: 1 },
            t.app.services.costs,
          )
        ).id,
    };
    // A stand-in for a new mutation that queues a transcode, declared and undeclared.
    schema = withDeclaredMutationWork(
      new GraphQLSchema({
        query: new GraphQLObjectType({ name: "Query", fields: { ok: { type: GraphQLString } } }),
        mutation: new GraphQLObjectType({
          name: "Mutation",
          fields: {
            declared: { ...queueTranscode, extensions: mutationWork({ jobs: ["TRANSCODE"] }) },
            forgotten: { ...queueTranscode, extensions: mutationWork({ jobs: [] }) },
            undeclared: queueTranscode,
          },
        }),
      }),
    );
  });
  afterAll(() => t?.stop());

  async function videoId(): Promise<string> {
    return (await createUpload(t, "w")).id;
  }

  it("createJob refuses a kind the running mutation did not declare, and writes no job", async () => {
    for (const field of ["forgotten", "undeclared"]) {
      const id = await videoId();
      // Strings on purpose: sent to the stand-in schema above (not the API's), built per field at run time.
      const res = await graphql({
        schema,
        source: `mutation($id: ID) { ${field}(videoId: $id) }`,
        variableValues: { id },
      });
      expect(res.errors?.[0]?.message, field).toMatch(
        new RegExp(`Mutation\\.${field} queues a TRANSCODE job it does not declare`),
      );
      expect(await t.app.services.db.job.count({ where: { videoId: id } })).toBe(0);
    }
  });

  it("a declared kind is queued, and so is a job queued outside any mutation (an upload's bytes arriving)", async () => {
    const id = await videoId();
    // A string on purpose: sent to the stand-in schema above, not the API's.
    const res = await graphql({
      schema,
      source: `mutation($id: ID) { declared(videoId: $id) }`,
      variableValues: { id },
    });
    expect(res.errors).toBeUndefined();
    const { db, costs } = t.app.services;
    const outside = await createJob(db, { videoId: id, kind: "TRANSCODE", input: {}, maxAttempts: 1 }, costs);
    expect(await t.app.services.db.job.count({ where: { videoId: id } })).toBe(2);
    expect(outside.kind).toBe("TRANSCODE");
  });
});
