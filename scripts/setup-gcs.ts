// Prepares a GCS bucket for STORAGE=gcs (`npm run setup:gcs`); safe to run again.
//  1. a Pub/Sub topic for the bucket's object notifications, which the bucket's service agent
//     may publish to,
//  2. a notification config: OBJECT_FINALIZE under videos/, payload JSON_API_V1, to that topic,
//  3. the subscription the API listens on (GCS_NOTIFICATION_SUBSCRIPTION),
//  4. the bucket's CORS: browsers upload (PUT to resumable sessions) and fetch segments and
//     posters (GET by signed URL) cross-origin.
// Reads GCS_BUCKET and GOOGLE_CLOUD_PROJECT (required), PUBSUB_TOPIC_PREFIX, GCS_NOTIFICATION_TOPIC,
// GCS_NOTIFICATION_SUBSCRIPTION, GCS_CORS_ORIGINS (comma-separated, default *); GCS_API_ENDPOINT
// and PUBSUB_EMULATOR_HOST point it at emulators.
import type { PubSub, Topic } from "@google-cloud/pubsub";
import type { Bucket, Storage } from "@google-cloud/storage";
import { parseCommandLine } from "../src/shared/command-line.ts";

parseCommandLine(
  `usage: npm run setup:gcs
Prepares a GCS bucket for STORAGE=gcs: the object-notification topic and subscription, and the
bucket's CORS; safe to run again. Reads GCS_BUCKET and GOOGLE_CLOUD_PROJECT (required),
PUBSUB_TOPIC_PREFIX, GCS_NOTIFICATION_TOPIC, GCS_NOTIFICATION_SUBSCRIPTION, GCS_CORS_ORIGINS;
GCS_API_ENDPOINT and PUBSUB_EMULATOR_HOST point it at emulators.`,
  {},
);

const ALREADY_EXISTS = 6;
const PUBLISHER_ROLE = "roles/pubsub.publisher";

const bucketName = process.env.GCS_BUCKET;
const projectId = process.env.GOOGLE_CLOUD_PROJECT;
if (!bucketName || !projectId) {
  console.error(
    "GCS_BUCKET and GOOGLE_CLOUD_PROJECT are required: the bucket, and the project that holds the notification topic",
  );
  process.exit(2);
}
const prefix = process.env.PUBSUB_TOPIC_PREFIX || "videograph";
const topicName = process.env.GCS_NOTIFICATION_TOPIC || `${prefix}-gcs-object-finalize`;
const subscriptionName = (process.env.GCS_NOTIFICATION_SUBSCRIPTION || `${prefix}-gcs-object-finalize-api`)
  .split("/")
  .pop()!;
const corsOrigins = (process.env.GCS_CORS_ORIGINS || "*")
  .split(",")
  .map((o) => o.trim())
  .filter(Boolean);
const storageEmulator = process.env.GCS_API_ENDPOINT;

const say = (created: boolean, what: string) => console.log(`  ${created ? "created" : "exists "}  ${what}`);

async function ensureTopic(pubsub: PubSub): Promise<Topic> {
  try {
    const [topic] = await pubsub.createTopic(topicName);
    say(true, `topic ${topicName}`);
    return topic;
  } catch (err) {
    if ((err as { code?: unknown }).code !== ALREADY_EXISTS) throw err;
    say(false, `topic ${topicName}`);
    return pubsub.topic(topicName);
  }
}

/** GCS publishes notifications as the project's Cloud Storage service agent. */
async function allowStorageToPublish(storage: Storage, topic: Topic): Promise<void> {
  const [serviceAccount] = await storage.getServiceAccount({ projectIdentifier: projectId });
  const member = `serviceAccount:${serviceAccount.emailAddress}`;
  const [policy] = await topic.iam.getPolicy();
  const bindings = policy.bindings ?? [];
  const binding = bindings.find((b) => b.role === PUBLISHER_ROLE);
  if (binding?.members?.includes(member)) return say(false, `${PUBLISHER_ROLE} for ${member} on ${topicName}`);
  if (binding) binding.members = [...(binding.members ?? []), member];
  else bindings.push({ role: PUBLISHER_ROLE, members: [member] });
  await topic.iam.setPolicy({ ...policy, bindings });
  say(true, `${PUBLISHER_ROLE} for ${member} on ${topicName}`);
}

async function ensureNotification(bucket: Bucket): Promise<void> {
  const [notifications] = await bucket.getNotifications();
  const topicPath = `projects/${projectId}/topics/${topicName}`;
  const existing = notifications.find(
    ({ metadata: m }) =>
      (m.topic ?? "").endsWith(topicPath) &&
      m.object_name_prefix === "videos/" &&
      (m.event_types ?? []).includes("OBJECT_FINALIZE"),
  );
  if (existing)
    return say(false, `notification ${existing.id}: OBJECT_FINALIZE of gs://${bucketName}/videos/* to ${topicName}`);
  const [created] = await bucket.createNotification(topicPath, {
    eventTypes: ["OBJECT_FINALIZE"],
    objectNamePrefix: "videos/",
    payloadFormat: "JSON_API_V1",
  });
  say(true, `notification ${created.id}: OBJECT_FINALIZE of gs://${bucketName}/videos/* to ${topicName}`);
}

async function ensureSubscription(pubsub: PubSub): Promise<void> {
  try {
    // Never expires, so no notification is lost while the API is down for a while.
    await pubsub.createSubscription(topicName, subscriptionName, { ackDeadlineSeconds: 60, expirationPolicy: {} });
    say(true, `subscription ${subscriptionName}`);
  } catch (err) {
    if ((err as { code?: unknown }).code !== ALREADY_EXISTS) throw err;
    say(false, `subscription ${subscriptionName}`);
  }
}

async function setCors(bucket: Bucket): Promise<void> {
  await bucket.setCorsConfiguration([
    {
      origin: corsOrigins,
      method: ["GET", "HEAD", "PUT", "POST", "OPTIONS"],
      responseHeader: [
        "Content-Type",
        "Content-Length",
        "Content-Range",
        "Range",
        "Cache-Control",
        "ETag",
        "Location",
        "X-Goog-Resumable",
        "X-Upload-Content-Length",
        "X-Upload-Content-Type",
      ],
      maxAgeSeconds: 3600,
    },
  ]);
  console.log(`  set      CORS on gs://${bucketName}: ${corsOrigins.join(", ")} may GET, HEAD, PUT, POST`);
}

// The clients are imported once the command line is read: --help needs neither.
const [pubsubModule, storageModule] = await Promise.all([
  import("@google-cloud/pubsub"),
  import("@google-cloud/storage"),
]);
const storage = new storageModule.Storage({ projectId, ...(storageEmulator ? { apiEndpoint: storageEmulator } : {}) });
const pubsub = new pubsubModule.PubSub({ projectId });
const bucket = storage.bucket(bucketName);
try {
  console.log(
    `GCS upload notifications for gs://${bucketName}${storageEmulator ? ` (emulator at ${storageEmulator})` : ""}, ` +
      `project ${projectId}:`,
  );
  const [exists] = await bucket.exists();
  if (!exists && storageEmulator) {
    await bucket.create();
    say(true, `bucket gs://${bucketName} on the emulator`);
  } else if (!exists) throw new Error(`Bucket gs://${bucketName} does not exist (or these credentials cannot see it)`);
  const topic = await ensureTopic(pubsub);
  if (storageEmulator) {
    // fake-gcs-server 1.54 has no notification configs: it publishes its own events when started
    // with -event.pubsub-project-id, -event.pubsub-topic and PUBSUB_EMULATOR_HOST.
    console.log(
      `  skipped  notification config and publisher role (emulator): start it with PUBSUB_EMULATOR_HOST set and ` +
        `-event.pubsub-project-id=${projectId} -event.pubsub-topic=${topicName} -event.list=finalize ` +
        `-event.object-prefix=videos/`,
    );
  } else {
    await allowStorageToPublish(storage, topic);
    await ensureNotification(bucket);
  }
  await ensureSubscription(pubsub);
  await setCors(bucket);
  console.log(
    `Set GCS_NOTIFICATION_SUBSCRIPTION=${subscriptionName} (with GOOGLE_CLOUD_PROJECT=${projectId}) on the API.`,
  );
} catch (err) {
  console.error(`setup:gcs failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await pubsub.close();
}
