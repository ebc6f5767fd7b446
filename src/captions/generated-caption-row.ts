import { ValidationError } from "../errors.ts";
import { TRANSCRIBE_LANGUAGES } from "../protocol/transcribe-messages.ts";
import { canonicalLanguage } from "./track-attributes.ts";

type TranscribeLanguage = (typeof TRANSCRIBE_LANGUAGES)[number];

/** The model's language for a canonical BCP-47 tag (`en-GB` is English), or null when it knows none. */
export function modelLanguageOf(language: string): TranscribeLanguage | null {
  const primary = language.split("-")[0]!.toLowerCase();
  return TRANSCRIBE_LANGUAGES.find((l) => l === primary) ?? null;
}

/**
 * The model's language for a BCP-47 tag (`en-GB` is English), or a ValidationError naming `field`:
 * the worker's model (Whisper tiny.en) recognises English only.
 */
export function transcribeLanguageOf(tag: string, field: string): { language: string; model: TranscribeLanguage } {
  const language = canonicalLanguage(tag, field);
  const model = modelLanguageOf(language);
  if (model === null) {
    throw new ValidationError(
      field,
      `Generated captions are made in English only (the speech model is Whisper tiny.en), not "${language}"`,
    );
  }
  return { language, model };
}

/** The row of a generated track not yet made (also written by a create mutation's `generatedCaptions`). */
export function generatedCaptionRow(language: string, name: string) {
  return {
    language,
    name,
    source: "GENERATED" as const,
    status: "PROCESSING" as const,
    progress: 0,
    key: "",
    cueCount: 0,
    lastCueEnd: 0,
    size: 0,
  };
}
