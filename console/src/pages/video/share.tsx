import { useState } from "preact/hooks";
import type { Video } from "../../live-video.ts";

/** The HTML that embeds `src` at the page's width, 16:9, titled for assistive technology. */
function embedSnippet(src: string, title: string): string {
  const escaped = title.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  return (
    `<div style="position:relative;width:100%;aspect-ratio:16/9">` +
    `<iframe src="${src.replace(/&/g, "&amp;")}" title="${escaped}" allow="autoplay; fullscreen; picture-in-picture" ` +
    `allowfullscreen style="position:absolute;inset:0;width:100%;height:100%;border:0"></iframe></div>`
  );
}

/** The manifests a player of one's own loads: the HLS master, and the DASH MPD of a READY fMP4 video. */
function StreamUrls({ video }: { video: Video }) {
  const absolute = (url: string) => new URL(url, location.href).href;
  return (
    <dl class="stream-urls">
      <dt>HLS</dt>
      <dd>
        <code data-testid="hls-url">{video.playbackUrl ? absolute(video.playbackUrl) : "—"}</code>
      </dd>
      <dt>DASH</dt>
      <dd>
        {video.dashUrl ? (
          <code data-testid="dash-url">{absolute(video.dashUrl)}</code>
        ) : (
          <span class="muted">
            {video.contentProtection
              ? "not for protected videos (their segments are encrypted for HLS)"
              : video.segmentFormat === "FMP4"
                ? "once the video is READY"
                : "needs fMP4 segments (this video has TS)"}
          </span>
        )}
      </dd>
      <dt>Protection</dt>
      <dd data-testid="content-protection">
        {video.contentProtection ? (
          <>
            {video.contentProtection.method === "CENC" ? "CENC (ClearKey) samples" : "AES-128 segments"}
            {video.contentProtection.keyRotationSegments
              ? `, a new key every ${video.contentProtection.keyRotationSegments} segments`
              : ", one key"}
            ; {video.contentProtection.method === "CENC" ? "licences" : "keys"} only with the playback URL's token
          </>
        ) : (
          <span class="muted">none</span>
        )}
      </dd>
    </dl>
  );
}

/** The public watch page, the stream URLs and an embed snippet; a SIGNED video's link carries a short-lived token. */
export function Share({ video }: { video: Video }) {
  const token = video.playbackUrl ? new URL(video.playbackUrl, location.href).searchParams.get("token") : null;
  const watch = `${location.origin}/watch/${video.id}${token ? `?token=${encodeURIComponent(token)}` : ""}`;
  const [options, setOptions] = useState({ autoplay: false, muted: false, loop: false, start: "" });
  const src = new URL(watch);
  for (const name of ["autoplay", "muted", "loop"] as const) if (options[name]) src.searchParams.set(name, "1");
  const start = Number(options.start);
  if (options.start && Number.isFinite(start) && start > 0) src.searchParams.set("t", String(start));
  const embed = embedSnippet(src.href, video.title);
  const [copied, setCopied] = useState(false);
  const check = (name: "autoplay" | "muted" | "loop", label: string) => (
    <label class="check">
      <input
        type="checkbox"
        checked={options[name]}
        onChange={(e) => {
          setCopied(false);
          setOptions({ ...options, [name]: (e.target as HTMLInputElement).checked });
        }}
      />
      {label}
    </label>
  );
  return (
    <section aria-labelledby="share-title" class="share">
      <h2 id="share-title">Share</h2>
      {video.playbackPolicy === "SIGNED" && (
        <p class="muted">SIGNED video: this link and snippet carry a playback token that expires.</p>
      )}
      <p>
        <a href={watch} data-testid="watch-link">
          {watch}
        </a>
      </p>
      <StreamUrls video={video} />
      <fieldset>
        <legend>Embed options</legend>
        {check("autoplay", "Autoplay (muted: browsers allow autoplay only without sound)")}
        {check("muted", "Muted")}
        {check("loop", "Loop")}
        <label for="embed-start">Start at (seconds)</label>
        <input
          id="embed-start"
          type="number"
          min={0}
          step={1}
          value={options.start}
          onInput={(e) => {
            setCopied(false);
            setOptions({ ...options, start: (e.target as HTMLInputElement).value });
          }}
        />
      </fieldset>
      <label for="embed">Embed snippet (fills the width of its container, 16:9)</label>
      <textarea id="embed" readOnly rows={4} value={embed} />
      <button
        type="button"
        onClick={async () => {
          await navigator.clipboard?.writeText(embed);
          setCopied(true);
        }}
      >
        {copied ? "Copied" : "Copy snippet"}
      </button>
    </section>
  );
}
