import { GraphQLError } from "graphql";
import { builder } from "../builder.ts";

builder.scalarType("DateTime", {
  description: "An ISO-8601 instant, e.g. 2026-11-22T10:00:00.000Z.",
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: (value) => {
    const date = new Date(String(value));
    if (typeof value !== "string" || Number.isNaN(date.getTime())) {
      throw new GraphQLError("DateTime must be an ISO-8601 string");
    }
    return date;
  },
});

builder.scalarType("File", {
  description: "A file sent with the GraphQL multipart request spec.",
  serialize: () => {
    throw new GraphQLError("File is an input-only scalar");
  },
});
