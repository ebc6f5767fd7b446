import { createWriteStream } from "node:fs";
import { lookup as dnsLookup } from "node:dns/promises";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { AddressPolicy } from "./address-policy.ts";

const MAX_REDIRECTS = 5;

/** A download that failed; `retryable` is false when trying again cannot help (a refusal, a 404). */
export class DownloadError extends Error {
  retryable: boolean;
  constructor(message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DownloadError";
    this.retryable = retryable;
  }
}

interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Every address a host name resolves to. */
export type ResolveHost = (hostname: string) => Promise<ResolvedAddress[]>;

const systemResolver: ResolveHost = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));

export interface DownloadArgs {
  url: string;
  /** The body is written here. */
  outFile: string;
  maxBytes: number;
  /** Decides which addresses may be connected to, on every hop. */
  policy: AddressPolicy;
  signal: AbortSignal;
  /** Default: the system resolver (getaddrinfo). */
  resolveHost?: ResolveHost;
  /** Until the response's headers arrive; default 15 s. */
  headersTimeoutMs?: number;
  /** Longest silence while the body streams; default 30 s. */
  idleTimeoutMs?: number;
  /** The whole download, redirects included; default 30 min. A slow drip cannot hold a worker longer. */
  totalTimeoutMs?: number;
}

export interface DownloadResult {
  bytes: number;
  /** The URL that answered, after redirects. */
  finalUrl: string;
  contentType: string | null;
}

/**
 * Downloads an http(s) URL to a file, refusing what a server-side fetch must not do: other schemes,
 * hosts whose addresses the policy refuses (checked after resolving, on every redirect hop, and
 * connected to by the checked address so a second DNS answer cannot swap it), more than
 * MAX_REDIRECTS redirects, and bodies larger than `maxBytes` (declared or counted).
 */
export async function downloadUrl(args: DownloadArgs): Promise<DownloadResult> {
  const totalMs = args.totalTimeoutMs ?? 30 * 60_000;
  const deadline = AbortSignal.timeout(totalMs);
  try {
    return await downloadHops({ ...args, signal: AbortSignal.any([args.signal, deadline]) });
  } catch (err) {
    if (deadline.aborted && !args.signal.aborted)
      throw new DownloadError(`the download took longer than ${totalMs / 1000} s`, true, { cause: err });
    throw err;
  }
}

async function downloadHops(args: DownloadArgs): Promise<DownloadResult> {
  let url = parseHttpUrl(args.url);
  for (let hop = 0; ; hop++) {
    const pinned = await checkedAddress(url, args);
    const response = await requestPinned(url, pinned, args);
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location) {
      response.resume();
      if (hop >= MAX_REDIRECTS) throw new DownloadError(`refused: more than ${MAX_REDIRECTS} redirects`, false);
      url = parseHttpUrl(new URL(response.headers.location, url).toString());
      continue;
    }
    if (status < 200 || status >= 300) {
      response.resume();
      // The server may recover from its own errors and from rate limits; not from a 404.
      throw new DownloadError(
        `HTTP ${status}${response.statusMessage ? ` ${response.statusMessage}` : ""}`,
        status >= 500 || status === 429 || status === 408,
      );
    }
    const declared = Number(response.headers["content-length"]);
    if (Number.isFinite(declared) && declared > args.maxBytes) {
      response.destroy();
      throw tooLarge(args.maxBytes);
    }
    const bytes = await saveBody(response, args);
    return { bytes, finalUrl: url.toString(), contentType: response.headers["content-type"] ?? null };
  }
}

function parseHttpUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new DownloadError(`refused: ${JSON.stringify(text.slice(0, 200))} is not a URL`, false);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new DownloadError(`refused: only http and https URLs can be imported, not ${url.protocol}`, false);
  }
  return url;
}

/** Resolves the URL's host and returns the address to connect to, once the policy accepts every answer. */
async function checkedAddress(url: URL, args: DownloadArgs): Promise<ResolvedAddress> {
  // URL keeps IPv6 literals in brackets, and has already normalized IPv4 forms like 0x7f.1.
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  let addresses: ResolvedAddress[];
  if (isIP(host)) {
    addresses = [{ address: host, family: isIP(host) === 6 ? 6 : 4 }];
  } else {
    try {
      addresses = await (args.resolveHost ?? systemResolver)(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new DownloadError(`cannot resolve ${host}: ${code ?? (err as Error).message}`, code !== "ENOTFOUND", {
        cause: err,
      });
    }
    if (addresses.length === 0) throw new DownloadError(`cannot resolve ${host}: no addresses`, true);
  }
  // Every answer, not only the first: a name that also points inside is not a public host. A
  // refused name is not told what it resolved to: that would make imports a DNS oracle into the
  // operator's network.
  for (const { address } of addresses) {
    const refusal = args.policy(address);
    if (refusal === null) continue;
    throw new DownloadError(isIP(host) ? `refused: ${refusal}` : `refused: ${host} is not a public address`, false);
  }
  return addresses[0]!;
}

function requestPinned(url: URL, pinned: ResolvedAddress, args: DownloadArgs): Promise<IncomingMessage> {
  // The connection goes to the address that was checked, whatever a new DNS answer would say.
  const lookup: LookupFunction = (_hostname, options, callback) => {
    if (options.all) callback(null, [{ address: pinned.address, family: pinned.family }]);
    else callback(null, pinned.address, pinned.family);
  };
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(url, {
      lookup,
      // A fresh connection per hop: a pooled socket could be one to another address.
      agent: false,
      signal: args.signal,
      headers: { "user-agent": "videograph-import/1", accept: "video/*, */*;q=0.5" },
    });
    const headersTimer = setTimeout(
      () =>
        request.destroy(
          new DownloadError(`no answer from ${url.host} within ${(args.headersTimeoutMs ?? 15_000) / 1000} s`, true),
        ),
      args.headersTimeoutMs ?? 15_000,
    );
    request.once("response", (response) => {
      clearTimeout(headersTimer);
      resolve(response);
    });
    request.once("error", (err) => {
      clearTimeout(headersTimer);
      reject(
        err instanceof DownloadError || err.name === "AbortError"
          ? err
          : new DownloadError(`cannot fetch ${url.host}: ${err.message}`, true, { cause: err }),
      );
    });
  });
}

async function saveBody(response: IncomingMessage, args: DownloadArgs): Promise<number> {
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      // Counted, not trusted from Content-Length: a server can send more than it declared, or declare nothing.
      if (bytes > args.maxBytes) callback(tooLarge(args.maxBytes));
      else callback(null, chunk);
    },
  });
  const idleTimeout = args.idleTimeoutMs ?? 30_000;
  response.setTimeout(idleTimeout, () =>
    response.destroy(new DownloadError(`the download stalled for ${idleTimeout / 1000} s`, true)),
  );
  try {
    await pipeline(response, counter, createWriteStream(args.outFile), { signal: args.signal });
  } catch (err) {
    if (err instanceof DownloadError || (err as Error).name === "AbortError") throw err;
    throw new DownloadError(`the download broke off: ${(err as Error).message}`, true, { cause: err });
  }
  return bytes;
}

function tooLarge(maxBytes: number): DownloadError {
  return new DownloadError(`too large: more than ${maxBytes} bytes`, false);
}
