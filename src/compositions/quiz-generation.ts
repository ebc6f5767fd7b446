import { z } from "zod";
import { QuizQuestion } from "../protocol/source-messages.ts";

const GEMINI_BASE_URL = "https://generativelanguage.googleapis.com";

export class GeminiNotConfiguredError extends Error {
  constructor() {
    super("GEMINI_API_KEY is not set: generateQuiz needs it (write the questions yourself, or set the key)");
    this.name = "GeminiNotConfiguredError";
  }
}

export class GeminiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GeminiError";
  }
}

/**
 * The response schema Gemini's structured output follows (an OpenAPI 3 subset: type, properties,
 * items, required, minItems/maxItems, description).
 */
function quizResponseSchema(count: number) {
  return {
    type: "OBJECT",
    properties: {
      questions: {
        type: "ARRAY",
        minItems: count,
        maxItems: count,
        items: {
          type: "OBJECT",
          properties: {
            question: { type: "STRING", description: "The question, at most 200 characters." },
            choices: {
              type: "ARRAY",
              minItems: 4,
              maxItems: 4,
              items: { type: "STRING", description: "A short answer choice." },
            },
            answerIndex: { type: "INTEGER", description: "The index (0-3) of the correct choice." },
            explanation: { type: "STRING", description: "One sentence on why the answer is right." },
          },
          required: ["question", "choices", "answerIndex"],
        },
      },
    },
    required: ["questions"],
  };
}

const GenerateContentResponse = z.object({
  candidates: z
    .array(
      z.object({
        content: z.object({ parts: z.array(z.object({ text: z.string().optional() })) }).optional(),
        finishReason: z.string().optional(),
      }),
    )
    .optional(),
  promptFeedback: z.object({ blockReason: z.string().optional() }).optional(),
});

/**
 * Asks Gemini (`generateContent` with a JSON response schema) for `count` multiple-choice
 * questions, and checks every one with the same schema the quiz renderer uses.
 */
export async function generateQuizQuestions(
  request: { topic: string; count: number; difficulty: "EASY" | "MEDIUM" | "HARD" },
  options: { apiKey: string | undefined; model: string; baseUrl?: string; fetch?: typeof fetch; timeoutMs?: number },
): Promise<QuizQuestion[]> {
  if (!options.apiKey) throw new GeminiNotConfiguredError();
  const model = encodeURIComponent(options.model);
  const url = `${options.baseUrl ?? GEMINI_BASE_URL}/v1beta/models/${model}:generateContent`;
  const difficulty = request.difficulty.toLowerCase();
  const prompt =
    `Write ${request.count} ${difficulty} multiple-choice quiz questions about: ${request.topic}.\n` +
    "Each has exactly four short choices, one of them correct; vary the position of the correct one. " +
    "Plain text, no markdown.";
  const res = await (options.fetch ?? fetch)(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-goog-api-key": options.apiKey },
    body: JSON.stringify({
      contents: [{ role: "user", parts: [{ text: prompt }] }],
      generationConfig: {
        responseMimeType: "application/json",
        responseSchema: quizResponseSchema(request.count),
        temperature: 0.7,
      },
    }),
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  });
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    throw new GeminiError(`Gemini answered HTTP ${res.status}: ${text.slice(0, 300)}`);
  }
  const body = GenerateContentResponse.safeParse(await res.json());
  if (!body.success) throw new GeminiError("Gemini's answer is not a generateContent response");
  const blockReason = body.data.promptFeedback?.blockReason;
  if (blockReason) throw new GeminiError(`Gemini refused the topic (${blockReason})`);
  const text = body.data.candidates?.[0]?.content?.parts.map((p) => p.text ?? "").join("") ?? "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new GeminiError("Gemini's answer is not the JSON the schema asks for");
  }
  const questions = z.object({ questions: z.array(QuizQuestion).min(1) }).safeParse(parsed);
  if (!questions.success) {
    throw new GeminiError(`Gemini's questions do not fit the quiz: ${questions.error.issues[0]!.message}`);
  }
  return questions.data.questions.slice(0, request.count);
}
