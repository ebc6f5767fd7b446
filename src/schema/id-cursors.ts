import { decodeBase64, decodeCursorChunk } from "@pothos/core";
import { GraphQLError } from "graphql";
import { isUuid } from "../ids.ts";

/**
 * Refuses an `after` or `before` of a connection paged by id (`cursor: "id"`) that is not a cursor
 * such a list returns (Pothos' base64 `GPC:S:<uuid>`), with BAD_USER_INPUT naming the argument.
 * Pothos itself would answer a cursor that does not decode with an error without a code, and hand
 * one that decodes to an id no row can have to Postgres, whose uuid column refuses it: an
 * unexpected error, logged as one, for any client that sends a crafted cursor.
 */
export function refuseMalformedIdCursors(args: { after?: string | null; before?: string | null }): void {
  for (const name of ["after", "before"] as const) {
    const cursor = args[name];
    if (cursor === null || cursor === undefined) continue;
    let id: unknown = null;
    try {
      const decoded = decodeBase64(cursor);
      if (decoded.startsWith("GPC:")) id = decodeCursorChunk(decoded.slice(4));
    } catch {
      id = null;
    }
    if (typeof id !== "string" || !isUuid(id)) {
      throw new GraphQLError(`\`${name}\` is not a cursor of this list: use a cursor it returned`, {
        extensions: { code: "BAD_USER_INPUT", field: name },
      });
    }
  }
}
