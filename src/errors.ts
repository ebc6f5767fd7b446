/** Domain errors that are part of the schema (see src/schema/errors.ts). */
export class ValidationError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = "ValidationError";
    this.field = field;
  }
}

export class FileTooLargeError extends Error {
  readonly maxBytes: number;
  constructor(maxBytes: number) {
    super(`The file exceeds the upload limit of ${maxBytes} bytes`);
    this.name = "FileTooLargeError";
    this.maxBytes = maxBytes;
  }
}

/** The most of an id an error message quotes: an id is a UUID (36 characters), a hostile one a megabyte. */
const QUOTED_ID_CHARS = 64;

/** A caller's id as an error message quotes it: JSON, cut at QUOTED_ID_CHARS with its length said. */
export function quotedId(id: string): string {
  if (id.length <= QUOTED_ID_CHARS) return JSON.stringify(id);
  return `${JSON.stringify(id.slice(0, QUOTED_ID_CHARS))}… (${id.length} characters)`;
}

export class NotFoundError extends Error {
  readonly id: string;
  constructor(what: string, id: string) {
    super(`No ${what} with id ${quotedId(id)}`);
    this.name = "NotFoundError";
    this.id = id;
  }
}

/** No worker can run the job now, so none is queued. */
export class NoWorkerError extends Error {
  readonly capability: string;
  constructor(capability: string, message: string) {
    super(message);
    this.name = "NoWorkerError";
    this.capability = capability;
  }
}

/** A caption file that is not valid WebVTT or SRT; `line` is where the problem is (1-based), when there is one. */
export class InvalidCaptionsError extends Error {
  readonly line: number | null;
  constructor(message: string, line: number | null) {
    super(line === null ? message : `Line ${line}: ${message}`);
    this.name = "InvalidCaptionsError";
    this.line = line;
  }
}

/** A video that cannot be clipped now: it is not READY, or its source file is gone. */
export class SourceUnavailableError extends Error {
  readonly sourceVideoId: string;
  constructor(sourceVideoId: string, message: string) {
    super(message);
    this.name = "SourceUnavailableError";
    this.sourceVideoId = sourceVideoId;
  }
}
