import { GraphQLError } from "graphql";
import { builder } from "../builder.ts";
import {
  FileTooLargeError,
  InvalidCaptionsError,
  NoWorkerError,
  NotFoundError,
  SourceUnavailableError,
  ValidationError,
} from "../errors.ts";

/**
 * A subscription's refusal of an id its caller has no row of: `NOT_FOUND`, with NotFoundError's
 * message (which quotes at most the start of a hostile id). Subscriptions have no result union.
 */
export function notFoundGraphQLError(what: string, id: string): GraphQLError {
  return new GraphQLError(new NotFoundError(what, id).message, { extensions: { code: "NOT_FOUND" } });
}

export const ErrorInterface = builder.interfaceRef<Error>("Error").implement({
  description: "Every error a mutation can return implements this.",
  fields: (t) => ({ message: t.exposeString("message") }),
});

builder.objectType(ValidationError, {
  name: "ValidationError",
  interfaces: [ErrorInterface],
  description: "An input was not acceptable; `field` names it.",
  fields: (t) => ({ field: t.exposeString("field") }),
});

builder.objectType(FileTooLargeError, {
  name: "FileTooLargeError",
  interfaces: [ErrorInterface],
  fields: (t) => ({ maxBytes: t.exposeFloat("maxBytes") }),
});

builder.objectType(NotFoundError, {
  name: "NotFoundError",
  interfaces: [ErrorInterface],
  description: "Nothing has the id given; `id` repeats it.",
  fields: (t) => ({ id: t.exposeID("id") }),
});

builder.objectType(NoWorkerError, {
  name: "NoWorkerError",
  interfaces: [ErrorInterface],
  description:
    "No worker can run this now (none with `capability` is alive); nothing was created. Try again once one runs.",
  fields: (t) => ({ capability: t.exposeString("capability") }),
});

builder.objectType(InvalidCaptionsError, {
  name: "InvalidCaptionsError",
  interfaces: [ErrorInterface],
  description: "The caption file is not valid WebVTT or SRT; `line` (1-based) is where, when the problem has a place.",
  fields: (t) => ({ line: t.exposeInt("line", { nullable: true }) }),
});

builder.objectType(SourceUnavailableError, {
  name: "SourceUnavailableError",
  interfaces: [ErrorInterface],
  description:
    "The source video cannot be clipped now (not READY, or its source file is gone); the message says which.",
  fields: (t) => ({ sourceVideoId: t.exposeID("sourceVideoId") }),
});
