import { decodeBase64, decodeCursorChunk } from "@pothos/core";
import { GraphQLError } from "graphql";
import { isUuid } from "../ids.ts";

/**
 * Refuses an `after` or `before` of a connection paged by id (`cursor: "id"`) whose id is not one a
 * row can have, with BAD_USER_INPUT naming the argument: Pothos would hand it to Postgres, whose
 * uuid column refuses it, an unexpected error logged as one. Pothos has read the cursor by the
 * time this runs; one that does not decode it refuses itself (`maskApiError` gives that refusal its
 * code).
 */
export function refuseMalformedIdCursors(args: { after?: string | null; before?: string | null }): void {
  for (const name of ["after", "before"] as const) {
    const cursor = args[name];
    if (cursor === null || cursor === undefined) continue;
    const decoded = decodeBase64(cursor);
    const id: unknown = decoded.startsWith("GPC:") ? decodeCursorChunk(decoded.slice(4)) : null;
    if (typeof id !== "string" || !isUuid(id)) {
      throw new GraphQLError(`\`${name}\` is not a cursor of this list: use a cursor it returned`, {
        extensions: { code: "BAD_USER_INPUT", field: name },
      });
    }
  }
}
