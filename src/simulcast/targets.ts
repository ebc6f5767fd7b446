import type { Db } from "../db/client.ts";
import { lockTenant } from "../db/client.ts";
import { ValidationError } from "../errors.ts";
import type { SimulcastTarget } from "../generated/prisma/client.ts";
import { hostAddressProblem } from "../http/outbound-url.ts";
import { tenantStream } from "../live/stream-management.ts";
import { isUuid } from "../ids.ts";
import { log } from "../log.ts";
import type { SimulcastTargets } from "../protocol/live-messages.ts";
import { openStreamKey, sealStreamKey } from "./target-keys.ts";
import type { SimulcastSettings } from "./simulcast-settings.ts";
import { checkTargetUrl, forwardingUrl, streamKeyProblem } from "./target-urls.ts";
import { validPlainText } from "../plain-text.ts";

/** What addSimulcastTarget takes. */
export interface NewSimulcastTarget {
  name: string;
  url: string;
  streamKey: string;
}

const MAX_NAME_LENGTH = 100;

/**
 * Adds a target to one of the tenant's streams: its name, URL and key checked (lengths first), its
 * host refused when it is (or resolves now to) no public address, at most `maxTargets` a stream
 * (counted under the tenant's lock, so two adds cannot both pass). The key is stored sealed; a
 * broadcast on air forwards to it within seconds (the worker asks for the targets again).
 */
export async function addTenantTarget(
  db: Db,
  settings: SimulcastSettings,
  tenantId: string,
  streamId: string,
  input: NewSimulcastTarget,
): Promise<SimulcastTarget> {
  const name = input.name.trim();
  if (!name || name.length > MAX_NAME_LENGTH)
    throw new ValidationError("name", `A name of 1 to ${MAX_NAME_LENGTH} characters is required`);
  validPlainText("name", name);
  const url = checkTargetUrl(input.url);
  if (typeof url === "string") throw new ValidationError("url", `Cannot be forwarded to: ${url}`);
  const keyProblem = streamKeyProblem(input.streamKey);
  if (keyProblem) throw new ValidationError("streamKey", `The stream key ${keyProblem}`);
  const stream = await tenantStream(db, tenantId, streamId);
  const where = await hostAddressProblem(url, settings.allowPrivateAddresses);
  if (where) throw new ValidationError("url", `Cannot be forwarded to: ${where}`);
  return db.$transaction(async (tx) => {
    await lockTenant(tx, tenantId);
    const count = await tx.simulcastTarget.count({ where: { liveStreamId: stream.id } });
    if (count >= settings.maxTargets)
      throw new ValidationError("liveStreamId", `A live stream has at most ${settings.maxTargets} simulcast targets`);
    return tx.simulcastTarget.create({
      data: {
        liveStreamId: stream.id,
        name,
        url: url.href,
        keyCiphertext: sealStreamKey(settings.cipherKey, stream.id, input.streamKey),
        // A short key's last characters would be most of it: none are shown.
        keyHint: input.streamKey.length > 8 ? input.streamKey.slice(-4) : "",
      },
    });
  });
}

/** One of the tenant's targets (through its stream), or null. */
export function findTenantTarget(db: Db, tenantId: string, id: string): Promise<SimulcastTarget | null> {
  if (!isUuid(id)) return Promise.resolve(null);
  return db.simulcastTarget.findFirst({ where: { id, liveStream: { tenantId } } });
}

/** Removes a target; a broadcast on air stops forwarding to it within seconds. */
export async function removeTarget(db: Db, target: SimulcastTarget): Promise<void> {
  await db.simulcastTarget.deleteMany({ where: { id: target.id } });
}

/** A stream's targets, oldest first. */
function targetsOf(db: Db, streamId: string): Promise<SimulcastTarget[]> {
  return db.simulcastTarget.findMany({ where: { liveStreamId: streamId }, orderBy: { createdAt: "asc" } });
}

/**
 * A stream's targets as the worker forwarding its broadcast gets them (over the feed's signed URL):
 * each with its key opened into the URL ffmpeg connects to. A key that does not open (sealed under
 * another SIGNING_SECRET) leaves its target out, with a warning.
 */
export async function forwardedTargets(
  db: Db,
  settings: SimulcastSettings,
  streamId: string,
): Promise<SimulcastTargets> {
  const targets = [];
  for (const t of await targetsOf(db, streamId)) {
    try {
      const streamKey = openStreamKey(settings.cipherKey, streamId, t.keyCiphertext);
      targets.push({ id: t.id, url: forwardingUrl(t.url, streamKey), streamKey });
    } catch (err) {
      log.warn("simulcast: a target's stream key does not open; it is not forwarded to", { targetId: t.id, err });
    }
  }
  return { allowPrivateAddresses: settings.allowPrivateAddresses, targets };
}

/** A target's state as its forwarding reported it (`live.simulcast`); false when it is not this stream's. */
export async function setTargetState(
  db: Db,
  streamId: string,
  change: { targetId: string; state: SimulcastTarget["state"]; error: string | null },
): Promise<boolean> {
  const { count } = await db.simulcastTarget.updateMany({
    where: { id: change.targetId, liveStreamId: streamId },
    data: {
      state: change.state,
      ...(change.state === "LIVE" ? { lastError: null } : {}),
      ...(change.error ? { lastError: change.error } : {}),
    },
  });
  return count > 0;
}

/** Every target of a stream whose broadcast ended is STOPPED (whatever its worker last said). */
export async function stopTargets(db: Db, streamId: string): Promise<boolean> {
  const { count } = await db.simulcastTarget.updateMany({
    where: { liveStreamId: streamId, state: { in: ["CONNECTING", "LIVE", "RETRYING"] } },
    data: { state: "STOPPED" },
  });
  return count > 0;
}
