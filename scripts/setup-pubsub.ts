// Creates the Pub/Sub topics and subscriptions the API and workers use (`npm run setup:pubsub`).
// Idempotent; the API also runs it at start. GOOGLE_CLOUD_PROJECT is required,
// PUBSUB_TOPIC_PREFIX optional; PUBSUB_EMULATOR_HOST points it at the emulator.
import { parseCommandLine } from "../src/shared/command-line.ts";

parseCommandLine(
  `usage: npm run setup:pubsub
Creates the Pub/Sub topics and subscriptions the API and workers use; safe to run again.
Reads GOOGLE_CLOUD_PROJECT (required) and PUBSUB_TOPIC_PREFIX; PUBSUB_EMULATOR_HOST points it at the emulator.`,
  {},
);
const projectId = process.env.GOOGLE_CLOUD_PROJECT;
if (!projectId) {
  console.error("GOOGLE_CLOUD_PROJECT is required: the project that holds the topics and subscriptions");
  process.exit(2);
}
const topicPrefix = process.env.PUBSUB_TOPIC_PREFIX || undefined;

// Imported once the command line is read: --help needs no Pub/Sub client.
const { createPubSubApiTransport } = await import("../src/transport/pubsub.ts");
const transport = createPubSubApiTransport({ projectId, topicPrefix });
try {
  const target = process.env.PUBSUB_EMULATOR_HOST ? `emulator at ${process.env.PUBSUB_EMULATOR_HOST}` : "Google Cloud";
  console.log(`Pub/Sub resources in project ${projectId} (${target}):`);
  for (const resource of await transport.setup()) {
    console.log(`  ${resource.created ? "created" : "exists "}  ${resource.kind.padEnd(12)} ${resource.name}`);
  }
  if (!process.env.PUBSUB_EMULATOR_HOST) {
    console.log(
      "Dead-lettering needs the Pub/Sub service agent " +
        "(service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com)\n" +
        "to have roles/pubsub.publisher on the dead-letter topic " +
        "and roles/pubsub.subscriber on the jobs subscriptions.",
    );
  }
} finally {
  await transport.stop();
}
