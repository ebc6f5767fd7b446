import { type ClientRequest, type IncomingMessage, request as httpRequest, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import { log } from "../log.ts";
import type { UrlSigner } from "../storage/url-signer.ts";
import type { BroadcastFeed, FeedPacket } from "./feed.ts";
import { FLV_HEADER, flvReader, flvTag } from "./flv.ts";
import { type IngestLimits, type IngestSessions, startPublisher } from "./publisher.ts";

/**
 * A publisher that reconnects to another API instance than the one holding its broadcast in the
 * reconnect grace (docs/live.md, "A publisher that drops and comes back"): the instance it reached checks its key as always,
 * then relays its media, as FLV over one long HTTP POST signed with the shared SIGNING_SECRET, to
 * the instance that holds the broadcast, where it continues the same broadcast as a publisher
 * reconnecting there would. That instance is the one whose address the broadcast's worker reads
 * its feed from (LIVE_FEED_URL).
 */

const RELAY_PATH_PREFIX = "/live/v1/relays/";
/** Why the relaying instance's publisher left (URI-encoded), as a trailer after the last tag. */
const END_REASON_TRAILER = "x-videograph-end-reason";
/** A trailer saying the relaying instance's publisher ended its stream itself (an unpublish). */
const UNPUBLISHED_TRAILER = "x-videograph-unpublished";
/** A relay's URL is opened at once: signed for this long. */
const RELAY_URL_TTL_SECONDS = 60;
/** The holding instance answers a relay within this long, or the publisher starts a new broadcast where it is. */
const RELAY_ANSWER_MS = 5000;
/** A relay this far behind (bytes the holding instance has not taken) is cut off, like a feed's reader. */
const MAX_RELAY_BACKLOG_BYTES = 32 * 1024 * 1024;
/** The holding instance's answer while it hands the broadcast on (a deploy): its publisher waits for the hand-off. */
const HANDING_ON_STATUS = 503;

export function relayPath(videoId: string): string {
  return `${RELAY_PATH_PREFIX}${videoId}`;
}

/** The relay URL of `videoId`'s broadcast on the instance at `holderOrigin`, signed to be opened at once. */
export function signedRelayUrl(holderOrigin: string, videoId: string, signer: UrlSigner): string {
  return `${holderOrigin}${signer.sign(relayPath(videoId), RELAY_URL_TTL_SECONDS)}`;
}

/**
 * Why a relay was not taken: the holding instance cannot be reached, did not answer, or refused it;
 * `handingOn`: it is handing the broadcast on (a deploy), so another instance adopts it shortly.
 */
export interface RelayRefusal {
  why: string;
  handingOn: boolean;
}

/** The relaying side: a publisher's media on their way to the instance holding its broadcast. */
export class RelayFeed implements BroadcastFeed {
  readonly #request: ClientRequest;
  readonly #endListeners: (() => void)[] = [];
  #ended = false;

  private constructor(request: ClientRequest) {
    this.#request = request;
  }

  /**
   * Opens a relay to `url` (the holding instance's signed relay URL): the feed once it answered
   * 200, or why not (it holds no such broadcast any more, it cannot be reached, it did not answer).
   */
  static open(url: string): Promise<RelayFeed | RelayRefusal> {
    const send = url.startsWith("https:") ? httpsRequest : httpRequest;
    const request = send(url, {
      method: "POST",
      headers: { "content-type": "video/x-flv", trailer: `${END_REASON_TRAILER}, ${UNPUBLISHED_TRAILER}` },
    });
    const relay = new RelayFeed(request);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        request.destroy();
        resolve({ why: "the API instance holding the broadcast did not answer", handingOn: false });
      }, RELAY_ANSWER_MS);
      request.on("error", (err) => {
        clearTimeout(timer);
        resolve({ why: `the API instance holding the broadcast cannot be reached (${err.message})`, handingOn: false });
        relay.#end();
      });
      request.once("response", (res: IncomingMessage) => {
        clearTimeout(timer);
        res.resume();
        if (res.statusCode !== 200) {
          request.destroy();
          resolve({
            why: `the API instance holding the broadcast refused the relay (${res.statusCode})`,
            handingOn: res.statusCode === HANDING_ON_STATUS,
          });
          return;
        }
        // The holding instance ended it: the broadcast is over, or it refused the media.
        res.on("error", () => relay.#end());
        res.once("close", () => relay.#end());
        resolve(relay);
      });
      request.write(FLV_HEADER);
      request.flushHeaders();
    });
  }

  push(packet: FeedPacket): void {
    if (this.#ended) return;
    if (this.#request.writableLength > MAX_RELAY_BACKLOG_BYTES) {
      log.warn("live: a relay fell too far behind; its publisher is cut off");
      this.#request.destroy();
      this.#end();
      return;
    }
    this.#request.write(flvTag(packet.type, packet.dts, packet.data));
  }

  onEnd(listener: () => void): void {
    if (this.#ended) listener();
    else this.#endListeners.push(listener);
  }

  /** The publisher left (`unpublished`: it ended its stream): the holding instance is told how, then the relay ends. */
  finish(reason: string | null, unpublished: boolean): void {
    if (this.#ended) return;
    if (reason) this.#request.addTrailers({ [END_REASON_TRAILER]: encodeURIComponent(reason) });
    else if (unpublished) this.#request.addTrailers({ [UNPUBLISHED_TRAILER]: "1" });
    this.#request.end();
    this.#ended = true;
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const listener of this.#endListeners) listener();
  }
}

/**
 * The holding side: `POST /live/v1/relays/{videoId}` (signed), answered only while this instance
 * holds that broadcast in its grace; the relayed FLV meets every check a publisher's media do
 * (bounded tags, codecs, bit rate, stalls), then continues the broadcast.
 */
export function createRelayIngest(deps: {
  /**
   * The live streams' sessions for a publisher continuing `videoId`'s broadcast; "handing on" while
   * this instance hands it on; null: this instance holds no such grace.
   */
  resumeSessions(videoId: string): IngestSessions | "handing on" | null;
  limits: IngestLimits;
  signer: { check(url: URL): string | null };
}) {
  return {
    matches: (url: URL) => url.pathname.startsWith(RELAY_PATH_PREFIX),

    handle(req: IncomingMessage, res: ServerResponse, url: URL): void {
      const refused = deps.signer.check(url);
      if (req.method !== "POST" || refused) {
        res.writeHead(403, { "content-type": "text/plain" }).end(`Relay refused: ${refused ?? "POST only"}\n`);
        return;
      }
      const videoId = url.pathname.slice(RELAY_PATH_PREFIX.length);
      const sessions = deps.resumeSessions(videoId);
      if (sessions === "handing on") {
        res
          .writeHead(HANDING_ON_STATUS, { "content-type": "text/plain" })
          .end("This API instance is handing the broadcast on; another instance continues it\n");
        return;
      }
      if (!sessions) {
        res
          .writeHead(409, { "content-type": "text/plain" })
          .end("No broadcast of this video waits for its publisher on this API instance\n");
        return;
      }
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-store" });
      res.flushHeaders();
      const publisher = startPublisher(
        {
          protocol: "relay",
          client: `relay from ${req.socket.remoteAddress}:${req.socket.remotePort}`,
          hold: () => req.pause(),
          release: () => req.resume(),
          // Ending the response tells the relaying instance, which cuts its publisher off.
          destroy: () => {
            res.end();
            req.resume();
          },
        },
        sessions,
        deps.limits,
      );
      // The relaying instance checked the key; the signature says it did.
      publisher.publish(videoId);
      const read = flvReader(
        deps.limits.maxMessageBytes,
        (packet) => publisher.packet(packet),
        (error) => `the relayed stream is not FLV (${error})`,
      );
      req.on("data", (chunk: Buffer) => {
        if (!publisher.received(chunk.length)) return;
        const refused = read(chunk);
        if (refused) publisher.close(refused);
      });
      req.once("end", () => {
        const reason = req.trailers[END_REASON_TRAILER];
        if (reason) publisher.close(decodedReason(reason));
        else if (req.trailers[UNPUBLISHED_TRAILER] === "1") publisher.unpublish();
        else publisher.close(null);
      });
      req.on("error", () => {});
      req.once("close", () => {
        if (!req.complete) publisher.close("the API instance relaying the publisher went away");
      });
    },
  };
}

function decodedReason(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return "the relaying API instance's publisher left";
  }
}
