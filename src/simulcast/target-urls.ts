import { isIP } from "node:net";

/** The schemes a target may use: ffmpeg forwards with only that protocol (and what it runs on) allowed. */
const SCHEMES = ["rtmp:", "rtmps:", "srt:"] as const;

/** The longest a target's server URL and its stream key may be. */
const MAX_TARGET_URL_LENGTH = 512;
const MAX_STREAM_KEY_LENGTH = 256;

/** A host name's characters: letters, digits, dots and hyphens (no percent-encoding, no opaque host). */
function isHostName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  for (const c of host) {
    const code = c.charCodeAt(0);
    const ok =
      (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || c === "." || c === "-";
    if (!ok) return false;
  }
  return true;
}

/**
 * A target's server URL as a tenant gave it, checked: rtmp://, rtmps:// or srt://, a host name or
 * IP literal, no credentials, no query or fragment (SRT's options are the service's: a tenant's
 * `mode=listener` would make the worker listen), an application path for RTMP and none for SRT, at
 * most 512 characters. Returns the URL or why it is refused. Where the host may be is checked apart
 * (`hostAddressProblem` here, the worker's address policy at each connect).
 */
export function checkTargetUrl(raw: string): URL | string {
  if (raw.length > MAX_TARGET_URL_LENGTH) return `longer than ${MAX_TARGET_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "not a URL";
  }
  if (!(SCHEMES as readonly string[]).includes(url.protocol))
    return `use an rtmp://, rtmps:// or srt:// URL, not ${url.protocol}`;
  if (url.username || url.password) return "credentials in the URL are not allowed";
  if (url.search || url.hash) return "a query or fragment is not allowed (the stream key goes in streamKey)";
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  if (!(isIP(host) !== 0 || isHostName(host))) return "the host is not a host name or an IP address";
  if (url.protocol === "srt:") {
    if (url.pathname !== "" && url.pathname !== "/") return "an srt:// URL has no path";
    if (!url.port) return "an srt:// URL needs a port";
  } else if (url.pathname.length < 2) return "an RTMP URL needs its application path (rtmp://host/app)";
  return url;
}

/** Why a stream key is refused (1 to 256 printable ASCII characters, no space), or null. */
export function streamKeyProblem(key: string): string | null {
  if (key.length === 0 || key.length > MAX_STREAM_KEY_LENGTH) return `must be 1 to ${MAX_STREAM_KEY_LENGTH} characters`;
  for (const c of key) {
    const code = c.charCodeAt(0);
    if (code < 0x21 || code > 0x7e) return "must be printable ASCII without spaces";
  }
  return null;
}

/**
 * Where ffmpeg connects for a target: the RTMP URL with the key as its last path part (the stream
 * name), or the SRT address with the key as its `streamid`, as a caller. A secret: it goes only to
 * the worker forwarding the broadcast.
 */
export function forwardingUrl(server: string, streamKey: string): string {
  const url = new URL(server);
  if (url.protocol === "srt:") {
    return `srt://${url.host}?${new URLSearchParams({ mode: "caller", streamid: streamKey })}`;
  }
  return `${server.endsWith("/") ? server.slice(0, -1) : server}/${streamKey}`;
}
