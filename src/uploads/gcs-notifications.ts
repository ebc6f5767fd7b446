import { PubSub, SubscriptionCloseBehaviors, type Message, type Subscription } from "@google-cloud/pubsub";
import { z } from "zod";
import { FileTooLargeError, NotFoundError, ValidationError } from "../errors.ts";
import { log } from "../log.ts";
import { sourceKey, videoKeyParts } from "../protocol/storage-layout.ts";
import { completeUpload, type UploadCompletionDeps } from "./complete-upload.ts";

const VIDEO_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const REOPEN_DELAY_MS = 5000;

/** The attributes GCS puts on every Pub/Sub notification, whatever the payload format. */
const NotificationAttributes = z.object({
  eventType: z.string(),
  bucketId: z.string(),
  objectId: z.string(),
  objectGeneration: z.string().optional(),
});

/** What a notification did; every outcome is acked. */
export type NotificationOutcome =
  | { outcome: "ignored"; reason: string }
  | { outcome: "queued" | "unchanged"; videoId: string }
  | { outcome: "rejected"; videoId: string; reason: string };

/**
 * Handles one bucket notification: the OBJECT_FINALIZE of `videos/{uuid}/source/upload` in
 * `bucket` (any bucket when null) completes that video's upload; anything else is ignored.
 * A completion the video refuses (no such video, empty or too large a file) is `rejected`:
 * delivering it again would change nothing. Unexpected errors (the database) are thrown.
 */
export async function handleObjectNotification(
  attributes: Record<string, string>,
  options: { bucket: string | null; complete: (videoId: string) => Promise<{ queued: boolean }> },
): Promise<NotificationOutcome> {
  const parsed = NotificationAttributes.safeParse(attributes);
  if (!parsed.success) return { outcome: "ignored", reason: "not a Cloud Storage notification" };
  const { eventType, bucketId, objectId } = parsed.data;
  if (eventType !== "OBJECT_FINALIZE") return { outcome: "ignored", reason: `event ${eventType}` };
  if (options.bucket !== null && bucketId !== options.bucket) {
    return { outcome: "ignored", reason: `bucket ${bucketId}` };
  }
  const videoId = videoKeyParts(objectId)?.videoId ?? "";
  if (!VIDEO_ID.test(videoId) || objectId !== sourceKey(videoId)) {
    return { outcome: "ignored", reason: "not an uploaded source" };
  }
  try {
    const { queued } = await options.complete(videoId);
    return { outcome: queued ? "queued" : "unchanged", videoId };
  } catch (err) {
    if (err instanceof ValidationError || err instanceof FileTooLargeError || err instanceof NotFoundError) {
      return { outcome: "rejected", videoId, reason: err.message };
    }
    throw err;
  }
}

export interface UploadNotificationListenerOptions {
  /** A subscription to the topic the bucket's notification configuration publishes to. */
  subscription: string;
  projectId?: string;
  /** Only this bucket's objects count; null: any bucket's. */
  bucket: string | null;
  deps: UploadCompletionDeps;
  /** Called after each message is handled and acked. */
  onOutcome?: (outcome: NotificationOutcome, messageId: string) => void;
}

export interface UploadNotificationListener {
  /** Fails when the subscription does not exist (`npm run setup:gcs` creates it). */
  start(): Promise<void>;
  /** Stops taking messages and waits for the ones being handled. */
  stop(): Promise<void>;
}

/**
 * Completes direct-to-GCS uploads from the bucket's object-finalize notifications (Pub/Sub,
 * at-least-once: completion is idempotent). A message is acked once handled; one whose handling
 * failed unexpectedly is nacked, so it comes again.
 */
export function createUploadNotificationListener(
  options: UploadNotificationListenerOptions,
): UploadNotificationListener {
  const pubsub = new PubSub(options.projectId ? { projectId: options.projectId } : {});
  let subscription: Subscription | null = null;
  let stopping = false;
  const inFlight = new Set<Promise<void>>();

  async function onMessage(message: Message): Promise<void> {
    let outcome: NotificationOutcome;
    try {
      outcome = await handleObjectNotification(message.attributes, {
        bucket: options.bucket,
        complete: (videoId) => completeUpload(options.deps, videoId),
      });
    } catch (err) {
      log.error("storage notification failed; it will be redelivered", {
        messageId: message.id,
        objectId: message.attributes.objectId,
        err,
      });
      message.nack();
      return;
    }
    message.ack();
    if (outcome.outcome === "rejected") {
      log.warn("uploaded source refused", { ...outcome, messageId: message.id });
    } else if (outcome.outcome !== "ignored") {
      log.info("upload completed by storage notification", { ...outcome, messageId: message.id });
    }
    options.onOutcome?.(outcome, message.id);
  }

  return {
    async start() {
      const sub = pubsub.subscription(options.subscription, {
        flowControl: { maxMessages: 20 },
        closeOptions: { behavior: SubscriptionCloseBehaviors.WaitForProcessing },
      });
      const [exists] = await sub.exists();
      if (!exists) {
        throw new Error(
          `Pub/Sub subscription ${options.subscription} does not exist; create it with \`npm run setup:gcs\``,
        );
      }
      sub.on("message", (message: Message) => {
        if (stopping) {
          message.nack();
          return;
        }
        const handling = onMessage(message).finally(() => inFlight.delete(handling));
        inFlight.add(handling);
      });
      sub.on("error", (err) =>
        log.error("storage notification subscription error", { subscription: options.subscription, err }),
      );
      sub.on("close", () => {
        if (stopping) return;
        log.error("storage notification subscription closed unexpectedly; reopening", {
          subscription: options.subscription,
        });
        setTimeout(() => stopping || sub.open(), REOPEN_DELAY_MS).unref();
      });
      subscription = sub;
    },

    async stop() {
      stopping = true;
      const closed = subscription?.close();
      await Promise.all(inFlight);
      await closed;
      await pubsub.close();
    },
  };
}
