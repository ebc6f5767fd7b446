import { type EmbeddedDatabase, runEmbeddedPostgres } from "./embedded.ts";
import { log } from "../log.ts";

// Started by startEmbeddedPostgres with an IPC channel: it answers with the URL once Postgres
// accepts connections, and stops Postgres when the channel closes (stop(), or its parent is gone).
const [dataDir, port] = process.argv.slice(2);
const send = (message: { url: string } | { error: string }) =>
  new Promise<void>((resolve) => process.send!(message, () => resolve()));

let database: EmbeddedDatabase;
try {
  database = await runEmbeddedPostgres(dataDir!, port ? Number(port) : undefined);
} catch (err) {
  await send({ error: (err as Error).message });
  process.exit(1);
}
const { stop } = database;
let stopping = false;
function stopPostgres(): void {
  if (stopping) return;
  stopping = true;
  log.info("stopping: embedded Postgres");
  stop().then(
    () => {
      log.info("embedded Postgres stopped");
      process.exit(0);
    },
    (err) => {
      log.error("embedded Postgres did not stop cleanly", { err });
      process.exit(1);
    },
  );
}
process.once("disconnect", stopPostgres);
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, stopPostgres);
await send({ url: database.url });
