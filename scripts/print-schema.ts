// Writes the GraphQL schema, printed and sorted, to schema/schema.graphql.
// `npm test` fails when the committed file differs from the code (test/schema.test.ts).
import { mkdirSync, writeFileSync } from "node:fs";
import { parseCommandLine } from "../src/shared/command-line.ts";

export const SCHEMA_FILE = "schema/schema.graphql";
parseCommandLine(
  `usage: npm run schema:print
Writes the GraphQL schema, printed and sorted, to ${SCHEMA_FILE} (also part of npm run generate).`,
  {},
);
// Imported once the command line is read: --help needs no schema.
const [{ printSchema }, { schema }] = await Promise.all([import("graphql"), import("../src/schema/index.ts")]);
mkdirSync("schema", { recursive: true });
writeFileSync(SCHEMA_FILE, `${printSchema(schema)}\n`);
console.log(`Wrote ${SCHEMA_FILE}`);
