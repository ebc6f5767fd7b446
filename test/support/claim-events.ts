// Plays an API that dies mid-batch: it claims a batch of worker events through the API's own
// Postgres transport, says how many, and never finishes applying them; the test then SIGKILLs it.
import { createPostgresTransport } from "../../src/transport/postgres.ts";

const transport = createPostgresTransport({ connectionString: process.env.DATABASE_URL!, stallSeconds: 30 });
await transport.start();
await transport.consumeEvents(async (events) => {
  process.stderr.write(`claimed ${events.length} events\n`);
  await new Promise(() => {});
});
process.stderr.write("consuming\n");
