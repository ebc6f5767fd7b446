import { decodeBase64, decodeCursorChunk } from "@pothos/core";
import { GraphQLError } from "graphql";
import { isUuid } from "../ids.ts";

/**
 * Refuses an `after` or `before` of a connection paged by id (`cursor: "id"`) that decodes to an
 * id no row can have, with BAD_USER_INPUT. Pothos would hand it to Postgres, whose uuid column
 * refuses it: an unexpected error, logged as one, for any client that sends a crafted cursor. A
 * cursor that does not decode at all is left to Pothos, which refuses it.
 */
export function refuseMalformedIdCursors(args: { after?: string | null; before?: string | null }): void {
  for (const name of ["after", "before"] as const) {
    const cursor = args[name];
    if (typeof cursor !== "string") continue;
    let id: unknown;
    try {
      const decoded = decodeBase64(cursor);
      if (!decoded.startsWith("GPC:")) continue;
      id = decodeCursorChunk(decoded.slice(4));
    } catch {
      continue;
    }
    if (typeof id !== "string" || !isUuid(id)) {
      throw new GraphQLError(`\`${name}\` is not a cursor of this list: use a cursor it returned`, {
        extensions: { code: "BAD_USER_INPUT", field: name },
      });
    }
  }
}
