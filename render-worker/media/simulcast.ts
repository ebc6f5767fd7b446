import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import {
  LIVE_SIMULCAST_HEADER,
  LIVE_SIMULCAST_TARGETS_HEADER,
  SimulcastTargets,
} from "../../src/protocol/live-messages.ts";
import { log } from "../log.ts";
import { anyAddress, type AddressPolicy, publicAddressesOnly } from "../net/address-policy.ts";
import { isAbortError, MediaError } from "./errors.ts";
import { runFfmpeg } from "./ffmpeg-process.ts";

/** A target's forwarding state, as `live.simulcast` carries it. */
type SimulcastState = "CONNECTING" | "LIVE" | "RETRYING" | "STOPPED";

/** What a target's forwarding reports (the run emits it as `live.simulcast`). */
interface SimulcastChange {
  targetId: string;
  state: SimulcastState;
  error: string | null;
}

export interface SimulcastOptions {
  feedUrl: string;
  /** ffmpeg's cwd (it writes nothing there). */
  workDir: string;
  /** Stops every target (the broadcast's run ends or is stopped). */
  signal: AbortSignal;
  report(change: SimulcastChange): Promise<void>;
  /** How often the stream's targets are asked for again (a target added or removed on air). */
  pollMs?: number;
  /** A target's ffmpeg that writes nothing for this long is stalled: cut off, and tried again. */
  stallMs?: number;
}

const POLL_MS = 3000;
const STALL_MS = 10_000;
/** Back-off between a target's tries: doubling from 1 s to 30 s, from 1 s again after a minute LIVE. */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;
const HEALTHY_MS = 60_000;
const TARGETS_TIMEOUT_MS = 5000;

/** Each scheme's muxer and the only protocols its ffmpeg may open for the output. */
const OUTPUTS: Record<string, { format: string; protocols: string }> = {
  "rtmp:": { format: "flv", protocols: "rtmp,tcp" },
  "rtmps:": { format: "flv", protocols: "rtmps,tls,tcp" },
  "srt:": { format: "mpegts", protocols: "srt" },
};

/**
 * Forwards a broadcast to its stream's simulcast targets (docs/live.md, "Simulcast"): each target
 * its own `ffmpeg -c copy` reading the feed as a forwarder (from the newest keyframe; the API cuts
 * it off when it falls 4 MiB behind) and writing FLV (rtmp, rtmps) or MPEG-TS (srt) with only that
 * protocol allowed. A target that fails, refuses or stalls is tried again with back-off while the
 * broadcast lasts; no target touches the broadcast's encode or another target. The targets are asked
 * for again every few seconds. `stop` (or `signal`) ends every target, each reported STOPPED.
 */
export function forwardSimulcast(options: SimulcastOptions): { stop(): Promise<void> } {
  const controller = new AbortController();
  const signal = AbortSignal.any([options.signal, controller.signal]);
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  const follow = async () => {
    while (!signal.aborted) {
      const wanted = await askTargets(options.feedUrl, signal);
      if (wanted) {
        const policy = wanted.allowPrivateAddresses ? anyAddress : publicAddressesOnly;
        for (const target of wanted.targets) {
          if (running.has(target.id)) continue;
          const own = new AbortController();
          const done = forwardTarget(options, target, policy, AbortSignal.any([signal, own.signal]));
          running.set(target.id, { controller: own, done });
        }
        const kept = new Set(wanted.targets.map((t) => t.id));
        for (const [id, t] of running) if (!kept.has(id)) t.controller.abort();
      }
      await sleep(options.pollMs ?? POLL_MS, null, { signal }).catch(() => {});
    }
  };
  const following = follow().catch((err) => log.warn("simulcast: following the targets failed", { err }));
  return {
    async stop() {
      controller.abort();
      await following;
      await Promise.all([...running.values()].map((t) => t.done));
    },
  };
}

/** The stream's targets as the API holding the feed answers them, or null when it does not now. */
async function askTargets(feedUrl: string, signal: AbortSignal): Promise<SimulcastTargets | null> {
  try {
    const res = await fetch(feedUrl, {
      headers: { [LIVE_SIMULCAST_TARGETS_HEADER]: "1" },
      signal: AbortSignal.any([signal, AbortSignal.timeout(TARGETS_TIMEOUT_MS)]),
    });
    // An API that does not know the header answers with the feed itself: not read.
    if (!res.ok || !res.headers.get("content-type")?.startsWith("application/json")) {
      await res.body?.cancel();
      return null;
    }
    return SimulcastTargets.parse(await res.json());
  } catch (err) {
    if (!signal.aborted) log.warn("simulcast: the stream's targets could not be read", { err: String(err) });
    return null;
  }
}

/** One target's forwarding, tried again with back-off until `signal`; ends reported STOPPED. */
async function forwardTarget(
  options: SimulcastOptions,
  target: SimulcastTargets["targets"][number],
  policy: AddressPolicy,
  signal: AbortSignal,
): Promise<void> {
  const report = (state: SimulcastState, error: string | null = null) =>
    options.report({ targetId: target.id, state, error }).catch((err) => {
      log.warn("simulcast: a target's state could not be reported", { targetId: target.id, err });
    });
  let failures = 0;
  while (!signal.aborted) {
    await report("CONNECTING");
    const started = Date.now();
    let error: string;
    try {
      const checked = await checkedUrl(target.url, policy);
      await forwardOnce(options, target.id, checked, signal, () => report("LIVE"));
      // The feed ended (ffmpeg took it for its input's end): the broadcast is over, or its feed moves.
      if (await feedEnded(options.feedUrl, signal)) break;
      error = "the broadcast's feed to the target ended";
    } catch (err) {
      if (signal.aborted) break;
      error = forwardingError(err, target, options.feedUrl);
    }
    if (signal.aborted) break;
    if (Date.now() - started > HEALTHY_MS) failures = 0;
    const waitMs = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** failures++);
    log.warn("simulcast: a target's forwarding stopped; it is tried again", { targetId: target.id, error, waitMs });
    await report("RETRYING", error);
    await sleep(waitMs, null, { signal }).catch(() => {});
  }
  await report("STOPPED");
}

/** Whether the API says the broadcast's feed ended (410 to HEAD on it). */
async function feedEnded(feedUrl: string, signal: AbortSignal): Promise<boolean> {
  try {
    const res = await fetch(feedUrl, {
      method: "HEAD",
      signal: AbortSignal.any([signal, AbortSignal.timeout(TARGETS_TIMEOUT_MS)]),
    });
    return res.status === 410;
  } catch {
    return false;
  }
}

/** Where a target's ffmpeg connects: its URL, and for RTMP the tcUrl its connect command names. */
export interface CheckedTarget {
  url: string;
  /** `-rtmp_tcurl`: ffmpeg's own default for the target's name, where `url` names the checked address. */
  tcUrl?: string;
}

/**
 * The target's URL once its host is allowed now (DNS can change since it was added): every address
 * its name resolves to must pass the policy. An srt:// or rtmp:// target is then given that address,
 * so ffmpeg connects where was checked (RTMP's connect command still names the host: `tcUrl`, as
 * ffmpeg would have made it, `proto://host:port/app`); an RTMPS target keeps its name (TLS needs
 * it), which ffmpeg resolves again (docs/security.md's threat table).
 */
export async function checkedUrl(raw: string, policy: AddressPolicy): Promise<CheckedTarget> {
  const url = new URL(raw);
  if (!(url.protocol in OUTPUTS)) throw new Error(`${url.protocol} is not a simulcast scheme`);
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  if (addresses.length === 0) throw new Error(`${host} did not resolve`);
  for (const address of addresses) {
    if (policy(address) !== null) throw new Error(`refused: ${host} is not a public address`);
  }
  if (isIP(host) || url.protocol === "rtmps:") return { url: url.href };
  const address = addresses[0]!;
  const named = new URL(url.href);
  url.hostname = address.includes(":") ? `[${address}]` : address;
  if (url.protocol === "srt:") return { url: url.href };
  const app = named.pathname.split("/")[1] ?? "";
  return { url: url.href, tcUrl: `rtmp://${named.hostname}:${named.port || RTMP_PORT}/${app}` };
}

/** RTMP's port when a URL names none (ffmpeg's too). */
const RTMP_PORT = 1935;

/** One ffmpeg forwarding the feed to `url` until the feed ends (resolves) or it fails or stalls (rejects). */
async function forwardOnce(
  options: SimulcastOptions,
  targetId: string,
  { url, tcUrl }: CheckedTarget,
  signal: AbortSignal,
  onLive: () => void,
): Promise<void> {
  const output = OUTPUTS[new URL(url).protocol]!;
  const stall = new AbortController();
  const stallMs = options.stallMs ?? STALL_MS;
  let lastOut = -1;
  let movedAt = Date.now();
  const watchdog = setInterval(() => {
    if (Date.now() - movedAt > stallMs) stall.abort(new Error(`the target took nothing for ${stallMs / 1000} s`));
  }, 500);
  try {
    await runFfmpeg({
      cwd: options.workDir,
      signal: AbortSignal.any([signal, stall.signal]),
      inputs: [
        {
          source: options.feedUrl,
          options: [
            ...["-protocol_whitelist", options.feedUrl.startsWith("https:") ? "https,tls,tcp" : "http,tcp"],
            ...["-headers", `${LIVE_SIMULCAST_HEADER}: ${targetId}\r\n`],
            ...["-f", "flv"],
          ],
        },
      ],
      outputs: [
        {
          target: url,
          options: [
            ...["-map", "0:v?", "-map", "0:a?", "-c", "copy"],
            ...["-protocol_whitelist", output.protocols],
            ...(tcUrl ? ["-rtmp_tcurl", tcUrl] : []),
            ...["-f", output.format],
          ],
        },
      ],
      onStatus: ({ outTimeSeconds }) => {
        if (outTimeSeconds <= lastOut) return;
        if (lastOut < 0) onLive();
        lastOut = outTimeSeconds;
        movedAt = Date.now();
      },
    });
  } catch (err) {
    if (stall.signal.aborted && !signal.aborted) throw stall.signal.reason;
    throw err;
  } finally {
    clearInterval(watchdog);
  }
}

/**
 * A failed try's reason, as the tenant reads it: the last line ffmpeg said (its stderr's tail), with
 * the target's URL, its stream key and the feed's address taken out.
 */
function forwardingError(err: unknown, target: { url: string; streamKey: string }, feedUrl: string): string {
  const tail = err instanceof MediaError ? err.stderrTail?.trim().split("\n").at(-1) : undefined;
  const text = tail || (err instanceof Error && !isAbortError(err) ? err.message : String(err));
  const feed = new URL(feedUrl);
  const secrets: [string, string][] = [
    [target.url, "the target"],
    [feedUrl, "the broadcast's feed"],
    [`${feed.origin}${feed.pathname}`, "the broadcast's feed"],
    [target.streamKey, "…"],
    [encodeURIComponent(target.streamKey), "…"],
  ];
  let out = text;
  for (const [secret, name] of secrets) out = out.replaceAll(secret, name);
  return out.slice(0, 300);
}
