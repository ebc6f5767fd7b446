import { parse } from "csv-parse/sync";
import { QuizQuestion } from "../protocol/source-messages.ts";

/** A CSV that cannot become quiz questions; the message names the row. */
export class QuizCsvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QuizCsvError";
  }
}

const COLUMNS = ["question", "choice1", "choice2", "choice3", "choice4", "answer"];
const LETTERS = "ABCD";

/**
 * Reads quiz questions from CSV rows `question,choice1,choice2,choice3,choice4,answer` (RFC 4180
 * quoting; an optional header row with those names). choice3 and choice4 may be empty for two-
 * or three-choice questions. The answer is a letter (A-D), a 1-based number, or the exact text
 * of a choice. Rows are numbered from 1 as in a spreadsheet, the header included.
 */
export function parseQuizCsv(csv: string): QuizQuestion[] {
  let records: string[][];
  try {
    records = parse(csv, { relax_column_count: true, skip_empty_lines: true, trim: true, bom: true });
  } catch (err) {
    const e = err as Error & { lines?: number };
    const where = e.lines ? ` at row ${e.lines}` : "";
    const reason = e.message.replace(/^Invalid Record Length: |^Quote Not Closed: /, "");
    throw new QuizCsvError(`The CSV cannot be read${where}: ${reason}`);
  }
  const hasHeader = records.length > 0 && records[0]![0]?.toLowerCase() === "question";
  const questions: QuizQuestion[] = [];
  records.forEach((record, i) => {
    if (i === 0 && hasHeader) return;
    questions.push(questionOfRow(record, i + 1));
  });
  if (questions.length === 0) throw new QuizCsvError("The CSV has no question rows");
  return questions;
}

function questionOfRow(record: string[], row: number): QuizQuestion {
  if (record.length !== COLUMNS.length) {
    const expected = `${COLUMNS.length} columns (${COLUMNS.join(",")})`;
    throw new QuizCsvError(`Row ${row}: expected ${expected}, found ${record.length}`);
  }
  const [question, ...rest] = record as [string, ...string[]];
  const answer = rest.pop()!;
  const lastChoice = rest.findLastIndex((c) => c !== "");
  const choices = rest.slice(0, lastChoice + 1);
  const gap = choices.indexOf("");
  if (gap >= 0) throw new QuizCsvError(`Row ${row}: choice${gap + 1} is empty but a later choice is not`);
  if (choices.length < 2) {
    throw new QuizCsvError(`Row ${row}: a question needs at least two choices, found ${choices.length}`);
  }
  const answerIndex = answerIndexOf(answer, choices);
  if (answerIndex === null) {
    const letters = LETTERS.slice(0, choices.length);
    throw new QuizCsvError(
      `Row ${row}: answer ${JSON.stringify(answer)} is not one of ${letters[0]}-${letters.at(-1)}, ` +
        `1-${choices.length} or the text of a choice`,
    );
  }
  const parsed = QuizQuestion.safeParse({ question, choices, answerIndex });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new QuizCsvError(`Row ${row}: ${issue.path.join(".") || "question"}: ${issue.message}`);
  }
  return parsed.data;
}

function answerIndexOf(answer: string, choices: string[]): number | null {
  const letter = LETTERS.indexOf(answer.toUpperCase());
  if (answer.length === 1 && letter >= 0 && letter < choices.length) return letter;
  if (/^\d+$/.test(answer) && Number(answer) >= 1 && Number(answer) <= choices.length) return Number(answer) - 1;
  const byText = choices.indexOf(answer);
  return byText >= 0 ? byText : null;
}
