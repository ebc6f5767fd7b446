import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql } from "./support/graphql.ts";

const GENERATE = graphql(`
  mutation($topic: String!, $count: Int!) {
    generateQuiz(topic: $topic, count: $count, difficulty: EASY) {
      __typename
      ... on GenerateQuizSuccess { questions { question choices answerIndex explanation } }
      ... on Error { message }
    } }`);

interface Seen {
  path: string;
  apiKey: string | undefined;
  body: any;
}

/** A stand-in for Google's Gemini generateContent endpoint (production Google cannot be reached here). */
async function startGeminiStandIn(answer: (body: any) => unknown) {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      const body = JSON.parse(raw);
      seen.push({ path: req.url!, apiKey: req.headers["x-goog-api-key"] as string | undefined, body });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          candidates: [
            { content: { role: "model", parts: [{ text: JSON.stringify(answer(body)) }] }, finishReason: "STOP" },
          ],
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((r) => server.close(r)),
  };
}

const question = (i: number, answerIndex = 1) => ({
  question: `Q${i}?`,
  choices: ["a", "b", "c", "d"],
  answerIndex,
  explanation: "because",
});

describe("generateQuiz against a stand-in for Google's Gemini endpoint", () => {
  let gemini: Awaited<ReturnType<typeof startGeminiStandIn>>;
  let t: TestApp;
  let broken = false;
  beforeAll(async () => {
    gemini = await startGeminiStandIn((body) => {
      const count = body.generationConfig.responseSchema.properties.questions.maxItems;
      return { questions: Array.from({ length: count }, (_, i) => question(i, broken ? 7 : 1)) };
    });
    t = await startTestApp({
      worker: false,
      env: { GEMINI_API_KEY: "test-key", GEMINI_MODEL: "gemini-test", GEMINI_BASE_URL: gemini.url },
    });
  });
  afterAll(async () => {
    await t?.stop();
    await gemini?.close();
  });

  it("asks for structured output with the quiz schema and returns checked questions", async () => {
    const answer = (await t.gql(GENERATE, { topic: "the solar system", count: 3 })).data.generateQuiz;
    const res = expectTypename(answer, "GenerateQuizSuccess");
    expect(res.questions).toEqual([0, 1, 2].map((i) => question(i)));
    const request = gemini.seen.at(-1)!;
    expect(request.path).toBe("/v1beta/models/gemini-test:generateContent");
    expect(request.apiKey).toBe("test-key");
    expect(request.body.contents[0].parts[0].text).toContain("the solar system");
    expect(request.body.generationConfig).toMatchObject({
      responseMimeType: "application/json",
      responseSchema: {
        type: "OBJECT",
        properties: { questions: { type: "ARRAY", minItems: 3, maxItems: 3 } },
        required: ["questions"],
      },
    });
  });

  it("an answer that does not fit the quiz is a GenerationError; bad arguments a ValidationError", async () => {
    broken = true;
    try {
      const res = (await t.gql(GENERATE, { topic: "x", count: 2 })).data.generateQuiz;
      expect(res).toMatchObject({
        __typename: "GenerationError",
        message: expect.stringMatching(/do not fit the quiz/),
      });
    } finally {
      broken = false;
    }
    expect((await t.gql(GENERATE, { topic: "x", count: 50 })).data.generateQuiz.__typename).toBe("ValidationError");
  });
});

describe("generateQuiz without GEMINI_API_KEY", () => {
  it("says clearly that it needs the key", async () => {
    const t = await startTestApp({ worker: false });
    try {
      const res = (await t.gql(GENERATE, { topic: "x", count: 2 })).data.generateQuiz;
      expect(res).toEqual({
        __typename: "NotConfiguredError",
        message: expect.stringMatching(/^GEMINI_API_KEY is not set: generateQuiz needs it/),
      });
    } finally {
      await t.stop();
    }
  });
});
