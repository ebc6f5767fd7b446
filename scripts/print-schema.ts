// Writes the GraphQL schema, printed and sorted, to schema/schema.graphql.
// `npm test` fails when the committed file differs from the code (test/schema.test.ts).
import { mkdirSync, writeFileSync } from "node:fs";
import { printSchema } from "graphql";
import { schema } from "../src/schema/index.ts";
import { parseCommandLine } from "../src/shared/command-line.ts";

export const SCHEMA_FILE = "schema/schema.graphql";
parseCommandLine(
  `usage: npm run schema:print
Writes the GraphQL schema, printed and sorted, to ${SCHEMA_FILE} (also part of npm run generate).`,
  {},
);
mkdirSync("schema", { recursive: true });
writeFileSync(SCHEMA_FILE, `${printSchema(schema)}\n`);
console.log(`Wrote ${SCHEMA_FILE}`);
