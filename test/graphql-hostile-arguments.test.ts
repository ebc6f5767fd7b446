import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  buildSchema,
  getNamedType,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
  type GraphQLOutputType,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isListType,
  isNonNullType,
  isObjectType,
  isUnionType,
} from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql } from "./support/graphql.ts";

/**
 * Every query and mutation of the printed schema, called once with plain arguments and then once per
 * hostile value of each argument and input field (an id that is no UUID, NUL, a lone surrogate, a
 * megabyte of text, 10,000 list items, extreme numbers and dates), the others left plain. Any answer
 * may refuse; none may be an unexpected error (Postgres or the code refusing what the API should
 * have refused first). The one URL is 127.0.0.1's port 9: no call reaches outside this machine.
 * Each subscription is called the same way over graphql-ws: its first answer may be an event or a
 * refusal, never an unexpected error or a socket the server closes as broken. No refusal's message
 * runs past 500 characters: it quotes at most the start of a hostile value (`quotedId`).
 */
// The documents it calls fields with are strings built from the printed schema at run time (and hostile on
// purpose), not `graphql` documents (docs/testing.md, "How tests send GraphQL"); the two that make the rows
// the plain calls name are.
const PLAIN_ID = "00000000-0000-4000-8000-000000000000";
const CREATE_VICTIM_KEY = graphql(`
  mutation { createApiKey(input: { name: "victim", scopes: [VIDEOS_READ] }) {
    __typename ... on CreateApiKeySuccess { apiKey { id } } } }`);
const CREATE_LIVE_STREAM = graphql(
  `mutation { createLiveStream { __typename ... on LiveStreamWithKey { liveStream { id } } } }`,
);

/** A plain value of `type` (required input fields only); an ID is `id`, the row the field names where one was made. */
function plain(type: GraphQLInputType, id: string, depth = 0): unknown {
  if (isNonNullType(type)) return plain(type.ofType, id, depth);
  if (isListType(type)) return [plain(type.ofType, id, depth)];
  if (isEnumType(type)) return type.getValues()[0]!.value;
  if (isInputObjectType(type)) {
    const fields = Object.values(type.getFields()).filter((f) => isNonNullType(f.type) && depth < 4);
    // A URL that passes the checks and leads nowhere: port 9 of this machine (the test allows private addresses).
    const value = (f: (typeof fields)[number]) =>
      f.name === "url" ? "http://127.0.0.1:9/v.mp4" : plain(f.type, id, depth + 1);
    return Object.fromEntries(fields.map((f) => [f.name, value(f)]));
  }
  const scalars: Record<string, unknown> = {
    ID: id,
    String: "abc",
    Int: 1,
    Float: 1,
    Boolean: false,
    DateTime: "2026-01-01T00:00:00Z",
  };
  return scalars[type.name] ?? null;
}

function hostile(type: GraphQLInputType): unknown[] {
  const nullable = isNonNullType(type) ? type.ofType : type;
  if (isListType(nullable)) {
    const item = nullable.ofType as GraphQLInputType;
    return [...hostile(item).map((v) => [v]), Array.from({ length: 10_000 }, () => plain(item, PLAIN_ID))];
  }
  const values: Record<string, unknown[]> = {
    ID: ["not-a-uuid", "", "x".repeat(100_000), `${PLAIN_ID.slice(0, -1)}\u0000`, btoa("GPC:S:not-a-uuid")],
    String: ["", "\u0000", "a\ud800b", "x".repeat(1_000_000), "%_\\", `${"a".repeat(50)}${"!".repeat(30_000)}`],
    Int: [-1, 0, 2_147_483_647, -2_147_483_648],
    Float: [-1, 0, 1e308, -1e308, 5e-324],
    DateTime: ["not-a-date", "0000-00-00T00:00:00Z", "275760-09-13T00:00:00.001Z", "-271821-04-19T00:00:00Z"],
  };
  return values[getNamedType(type).name] ?? [];
}

/** Every input field under `type`, three levels deep, with its path. */
function inputFields(type: GraphQLInputType, depth = 0): { path: string[]; type: GraphQLInputType }[] {
  const named = isNonNullType(type) ? type.ofType : type;
  if (!isInputObjectType(named) || depth >= 3) return [];
  return Object.values(named.getFields()).flatMap((f) => [
    { path: [f.name], type: f.type },
    ...inputFields(f.type, depth + 1).map((inner) => ({ path: [f.name, ...inner.path], type: inner.type })),
  ]);
}

function withValue(args: Record<string, unknown>, at: string[], value: unknown): Record<string, unknown> {
  const copy = structuredClone(args);
  let node = copy;
  for (const key of at.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[at.at(-1)!] = value;
  return copy;
}

function selectionOf(type: GraphQLOutputType): string {
  const named = getNamedType(type);
  // A result union's typed errors (they implement Error) with their message.
  const errors =
    isUnionType(named) && named.getTypes().some((t) => t.getInterfaces().some((i) => i.name === "Error"))
      ? " ... on Error { message }"
      : "";
  return isObjectType(named) || isUnionType(named) || isInterfaceType(named) ? ` { __typename${errors} }` : "";
}

/** The longest message a refusal may have: it quotes at most the start of a hostile value. */
const MAX_MESSAGE_CHARS = 500;

/** Why an error (or a result union's typed error) is no refusal the API means; null when it is one. */
function errorProblem(error: { message: string; extensions?: { code?: unknown } }): string | null {
  if (error.extensions?.code === "INTERNAL_SERVER_ERROR" || error.message === "Unexpected error.") return "unexpected";
  if (error.message.length > MAX_MESSAGE_CHARS) return `a message of ${error.message.length} characters`;
  return null;
}

/** The operation calling `field` with each of its arguments as a variable. */
function operationFor(kind: "query" | "mutation" | "subscription", field: GraphQLField<unknown, unknown>): string {
  if (field.args.length === 0) return `${kind} { ${field.name}${selectionOf(field.type)} }`;
  const variables = field.args.map((a) => `$${a.name}: ${a.type.toString()}`).join(", ");
  const args = field.args.map((a) => `${a.name}: $${a.name}`).join(", ");
  return `${kind}(${variables}) { ${field.name}(${args})${selectionOf(field.type)} }`;
}

describe("hostile arguments to every query and mutation", () => {
  let t: TestApp;
  beforeAll(async () => {
    // The limits that refuse a document before its resolvers run are lifted: the values must reach them.
    t = await startTestApp({
      worker: false,
      env: {
        RATE_LIMIT_MUTATIONS_PER_MINUTE: "100000000",
        GRAPHQL_MAX_BODY_BYTES: String(64 * 1024 * 1024),
        GRAPHQL_MAX_TOKENS: "100000",
        URL_IMPORT_ALLOW_PRIVATE: "true",
        WEBHOOK_ALLOW_PRIVATE_URLS: "true",
      },
    });
  });
  afterAll(() => t?.stop());

  /**
   * Rows the plain calls name, so that they get past "not found" to the checks behind it: a video, an
   * API key (not the test's own), a live stream and a webhook endpoint, picked by the field's name.
   */
  async function rowsToName(): Promise<(field: string) => string> {
    const db = t.app.services.db;
    const tenant = { connect: { name: "default" } };
    const video = await db.video.create({ data: { title: "hostile arguments", tenant } });
    const endpoint = await db.webhookEndpoint.create({
      data: { url: "http://127.0.0.1:9/hook", secret: "whsec_test", tenant },
    });
    const key = await t.gql(CREATE_VICTIM_KEY);
    const stream = await t.gql(CREATE_LIVE_STREAM);
    const ids: [RegExp, string][] = [
      [/ApiKey/i, expectTypename(key.data.createApiKey, "CreateApiKeySuccess").apiKey.id],
      [/LiveStream/i, expectTypename(stream.data.createLiveStream, "LiveStreamWithKey").liveStream.id],
      [/WebhookEndpoint/i, endpoint.id],
      [/video|clip|StaticRenditions|Caption|viewers/i, video.id],
    ];
    return (field) => ids.find(([name]) => name.test(field))?.[1] ?? PLAIN_ID;
  }

  it("answers each with data or an error it means (never an unexpected error)", async () => {
    const schema = buildSchema(await readFile(path.resolve(import.meta.dirname, "../schema/schema.graphql"), "utf8"));
    const roots: ["query" | "mutation", GraphQLObjectType][] = [
      ["query", schema.getQueryType()!],
      ["mutation", schema.getMutationType()!],
    ];
    const idFor = await rowsToName();
    const unexpected: string[] = [];
    const refusals = new Set<string>();
    let calls = 0;
    for (const [kind, root] of roots) {
      // What deletes, revokes or cancels the named rows goes last.
      const destructive = (name: string) => /^(delete|revoke|remove|cancel)/.test(name);
      const fields = Object.values(root.getFields()).sort((a, b) => +destructive(a.name) - +destructive(b.name));
      for (const field of fields) {
        const operation = operationFor(kind, field);
        const required = field.args.filter((a) => isNonNullType(a.type));
        const base = Object.fromEntries(required.map((a) => [a.name, plain(a.type, idFor(field.name))]));
        const cases: [string, Record<string, unknown>][] = [["plain", base]];
        for (const arg of field.args) {
          for (const value of hostile(arg.type)) cases.push([arg.name, { ...base, [arg.name]: value }]);
          const withArg = { ...base, [arg.name]: base[arg.name] ?? plain(arg.type, idFor(field.name)) };
          for (const inner of inputFields(arg.type)) {
            for (const value of hostile(inner.type)) {
              cases.push([[arg.name, ...inner.path].join("."), withValue(withArg, [arg.name, ...inner.path], value)]);
            }
          }
        }
        for (const [where, variables] of cases) {
          calls++;
          const res = await t.gql(operation, variables);
          const what = `${kind} ${field.name}, ${where} = ${JSON.stringify(variables).slice(0, 120)}`;
          for (const error of res.errors ?? []) {
            const problem = errorProblem(error);
            if (problem) unexpected.push(`${what}: ${problem}`);
            else if (error.extensions?.code === "BAD_USER_INPUT") refusals.add(`${field.name}.${where}`);
          }
          // A typed error of a result union (ValidationError, NotFoundError…) is a refusal too.
          const answer = res.data?.[field.name] as { __typename?: string; message?: string } | null | undefined;
          const problem = answer?.message === undefined ? null : errorProblem({ message: answer.message });
          if (problem) unexpected.push(`${what}: ${problem}`);
          if (answer?.__typename?.endsWith("Error")) refusals.add(`${field.name}.${where}`);
        }
      }
    }
    expect(unexpected).toEqual([]);
    // The calls reached the resolvers: hundreds of them, and many refusals from the API's own checks.
    expect(calls).toBeGreaterThan(500);
    expect(refusals.size).toBeGreaterThan(100);
  }, 120_000);

  it("answers each subscription's first message over graphql-ws with an event or an error it means", async () => {
    const schema = buildSchema(await readFile(path.resolve(import.meta.dirname, "../schema/schema.graphql"), "utf8"));
    const idFor = await rowsToName();
    const unexpected: string[] = [];
    const answers: string[] = [];
    for (const field of Object.values(schema.getSubscriptionType()!.getFields())) {
      const operation = operationFor("subscription", field);
      const base = Object.fromEntries(field.args.map((a) => [a.name, plain(a.type, idFor(field.name))]));
      const cases: [string, Record<string, unknown>][] = [["plain", base]];
      for (const arg of field.args) {
        for (const value of hostile(arg.type)) cases.push([arg.name, { ...base, [arg.name]: value }]);
      }
      for (const [where, variables] of cases) {
        const what = `${field.name}, ${where} = ${JSON.stringify(variables).slice(0, 120)}`;
        const client = t.wsClient();
        const first = await new Promise<string>((resolve) => {
          const unsubscribe = client.subscribe(
            { query: operation, variables },
            {
              next: (msg) => {
                unsubscribe();
                for (const error of msg.errors ?? []) {
                  const problem = errorProblem(error);
                  if (problem) unexpected.push(`${what}: ${problem}`);
                }
                resolve(
                  msg.errors ? `error ${msg.errors.map((e) => e.extensions?.code ?? e.message).join()}` : "event",
                );
              },
              error: (err) => {
                // A socket closed as broken (1011, graphql-ws' 4500) is unexpected; refusals come as
                // GraphQL errors or a close that names the request (4400, 1009 too large).
                const code = (err as { code?: number }).code;
                if (code === 1011 || code === 4500) unexpected.push(`${what}: closed ${code}`);
                const errors = Array.isArray(err) ? (err as { message: string; extensions?: { code?: string } }[]) : [];
                for (const error of errors) {
                  const problem = errorProblem(error);
                  if (problem) unexpected.push(`${what}: ${problem}`);
                }
                resolve(code === undefined ? "error" : `closed ${code}`);
              },
              complete: () => resolve("complete"),
            },
          );
        });
        answers.push(`${field.name}.${where}: ${first}`);
        await client.dispose();
      }
    }
    expect(unexpected).toEqual([]);
    // The plain calls were answered with events: the arguments reached the resolvers.
    for (const name of ["videoEvents", "liveStreamEvents", "viewersNow"]) {
      expect(answers).toContain(`${name}.plain: event`);
    }
    expect(answers.length).toBeGreaterThanOrEqual(18);
  }, 60_000);
});
