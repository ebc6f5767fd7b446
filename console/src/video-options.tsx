import { CheckboxSet } from "./checkbox-set.tsx";
import { useState } from "preact/hooks";
import { AssetPicker, useAssets } from "./asset-picker.tsx";
import type { VariablesOf } from "./graphql.ts";
import type { CreateUploadMutation } from "./operations.ts";

type UploadInput = VariablesOf<typeof CreateUploadMutation>["input"];
type StaticRenditionName = NonNullable<UploadInput["staticRenditions"]>[number];
type WatermarkPosition = NonNullable<NonNullable<UploadInput["watermark"]>["position"]>;

/** What the options form holds, as typed (numbers as the inputs' text). */
export interface VideoOptions {
  segmentFormat: NonNullable<UploadInput["segmentFormat"]>;
  playbackPolicy: NonNullable<UploadInput["playbackPolicy"]>;
  /** Encrypt the segments (AES-128, or CENC for fMP4); `keyRotationSegments` (AES-128) as typed, "" for one key. */
  encrypted: boolean;
  protectionMethod: "AES_128" | "CENC";
  keyRotationSegments: string;
  staticRenditions: StaticRenditionName[];
  loudness: boolean;
  integratedLufs: string;
  truePeakDb: string;
  lra: string;
  watermarkAssetId: string;
  watermarkPosition: WatermarkPosition;
  watermarkOpacity: string;
  watermarkWidth: string;
}

/** The API's defaults: TS segments, PUBLIC, not encrypted, no static renditions, no loudness target, no watermark. */
export const DEFAULT_VIDEO_OPTIONS: VideoOptions = {
  segmentFormat: "TS",
  playbackPolicy: "PUBLIC",
  encrypted: false,
  protectionMethod: "AES_128",
  keyRotationSegments: "",
  staticRenditions: [],
  loudness: false,
  integratedLufs: "-16",
  truePeakDb: "-1.5",
  lra: "11",
  watermarkAssetId: "",
  watermarkPosition: "BOTTOM_RIGHT",
  watermarkOpacity: "0.8",
  watermarkWidth: "0.15",
};

/**
 * The creation options every way of making a video takes (createUpload, createVideoFromUrl,
 * renderManim, renderComposition share these fields), with only what differs from the defaults.
 */
export type CreationOptionsInput = Pick<
  UploadInput,
  "segmentFormat" | "playbackPolicy" | "contentProtection" | "staticRenditions" | "loudness" | "watermark"
>;

const number = (text: string) => (text.trim() === "" ? null : Number(text));

export function creationOptionsInput(options: VideoOptions): CreationOptionsInput {
  return {
    ...(options.segmentFormat !== "TS" && { segmentFormat: options.segmentFormat }),
    ...(options.playbackPolicy !== "PUBLIC" && { playbackPolicy: options.playbackPolicy }),
    ...(options.encrypted && {
      contentProtection:
        options.protectionMethod === "CENC"
          ? { method: "CENC" as const }
          : { method: "AES_128" as const, keyRotationSegments: number(options.keyRotationSegments) },
    }),
    ...(options.staticRenditions.length > 0 && { staticRenditions: options.staticRenditions }),
    ...(options.loudness && {
      loudness: {
        integratedLufs: number(options.integratedLufs),
        truePeakDb: number(options.truePeakDb),
        lra: number(options.lra),
      },
    }),
    ...(options.watermarkAssetId && {
      watermark: {
        assetId: options.watermarkAssetId,
        position: options.watermarkPosition,
        opacity: number(options.watermarkOpacity),
        widthFraction: number(options.watermarkWidth),
      },
    }),
  };
}

/**
 * What each static rendition is, in the words the console uses for it everywhere (none says
 * "quality": the player's menu is labelled so).
 */
export const STATIC_RENDITIONS: [StaticRenditionName, string][] = [
  ["HIGHEST", "MP4, full size"],
  ["LOW", "MP4, small"],
  ["AUDIO", "M4A, audio only"],
];
const POSITIONS: [WatermarkPosition, string][] = [
  ["BOTTOM_RIGHT", "Bottom right"],
  ["BOTTOM_LEFT", "Bottom left"],
  ["TOP_RIGHT", "Top right"],
  ["TOP_LEFT", "Top left"],
];

const text = (e: Event) => (e.target as HTMLInputElement).value;

/**
 * The per-video creation options, folded in a `<details>`: segment format, playback policy, content
 * protection, static renditions, a loudness target and a watermark (a WATERMARK asset, chosen or uploaded here).
 * `id` prefixes the controls' ids, so several forms on one page each have their own.
 */
export function VideoOptionsFields({
  id,
  value,
  onChange,
}: {
  id: string;
  value: VideoOptions;
  onChange: (value: VideoOptions) => void;
}) {
  const [error, setError] = useState<string | null>(null);
  const { assets, reload } = useAssets(setError);
  const set = (patch: Partial<VideoOptions>) => onChange({ ...value, ...patch });

  return (
    <details class="video-options">
      <summary>Video options</summary>
      <label for={`${id}-segment-format`}>Segment format</label>
      <select
        id={`${id}-segment-format`}
        value={value.segmentFormat}
        onChange={(e) => set({ segmentFormat: text(e) as VideoOptions["segmentFormat"] })}
      >
        <option value="TS">MPEG-TS (every player)</option>
        <option value="FMP4">Fragmented MP4 (CMAF)</option>
      </select>
      <label for={`${id}-playback-policy`}>Playback</label>
      <select
        id={`${id}-playback-policy`}
        value={value.playbackPolicy}
        onChange={(e) => set({ playbackPolicy: text(e) as VideoOptions["playbackPolicy"] })}
      >
        <option value="PUBLIC">Public: anyone with the URL</option>
        <option value="SIGNED">Signed: short-lived tokens</option>
      </select>
      <fieldset>
        <legend>Content protection</legend>
        <label class="check">
          <input
            type="checkbox"
            checked={value.encrypted}
            onChange={(e) => set({ encrypted: (e.target as HTMLInputElement).checked })}
          />
          Encrypt the segments (keys served with the video's token; no downloads, no DASH)
        </label>
        {value.encrypted && (
          <label>
            Encryption
            <select
              value={value.protectionMethod}
              onChange={(e) => set({ protectionMethod: text(e) as VideoOptions["protectionMethod"] })}
            >
              <option value="AES_128">AES-128 segments: every HLS player</option>
              <option value="CENC">CENC (ClearKey): fMP4 only, players with EME</option>
            </select>
          </label>
        )}
        {value.encrypted && value.protectionMethod === "AES_128" && (
          <div class="option-numbers">
            <label>
              New key every (segments; empty: one key)
              <input
                type="number"
                min={1}
                step={1}
                value={value.keyRotationSegments}
                onInput={(e) => set({ keyRotationSegments: text(e) })}
              />
            </label>
          </div>
        )}
      </fieldset>
      <CheckboxSet
        legend="Downloads (static renditions)"
        options={STATIC_RENDITIONS}
        value={value.staticRenditions}
        onChange={(staticRenditions) => set({ staticRenditions })}
      />
      <fieldset>
        <legend>Loudness</legend>
        <label class="check">
          <input
            type="checkbox"
            checked={value.loudness}
            onChange={(e) => set({ loudness: (e.target as HTMLInputElement).checked })}
          />
          Normalize loudness (EBU R128)
        </label>
        {value.loudness && (
          <div class="option-numbers">
            <label>
              Integrated (LUFS)
              <input
                type="number"
                step={0.5}
                value={value.integratedLufs}
                onInput={(e) => set({ integratedLufs: text(e) })}
              />
            </label>
            <label>
              True peak (dBTP)
              <input type="number" step={0.1} value={value.truePeakDb} onInput={(e) => set({ truePeakDb: text(e) })} />
            </label>
            <label>
              Range (LU)
              <input type="number" step={1} value={value.lra} onInput={(e) => set({ lra: text(e) })} />
            </label>
          </div>
        )}
      </fieldset>
      <fieldset>
        <legend>Watermark</legend>
        <AssetPicker
          id={`${id}-watermark`}
          kind="WATERMARK"
          label="Watermark image"
          noneLabel="None"
          accept="image/png,image/jpeg"
          uploadLabel="Upload a watermark image"
          value={value.watermarkAssetId}
          onChange={(assetId) => set({ watermarkAssetId: assetId })}
          assets={assets}
          reload={reload}
          onError={setError}
        />
        {value.watermarkAssetId && (
          <div class="option-numbers">
            <label>
              Corner
              <select
                value={value.watermarkPosition}
                onChange={(e) => set({ watermarkPosition: text(e) as WatermarkPosition })}
              >
                {POSITIONS.map(([position, label]) => (
                  <option key={position} value={position}>
                    {label}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Opacity (0 to 1)
              <input
                type="number"
                min={0}
                max={1}
                step={0.05}
                value={value.watermarkOpacity}
                onInput={(e) => set({ watermarkOpacity: text(e) })}
              />
            </label>
            <label>
              Width (fraction of the video's)
              <input
                type="number"
                min={0.01}
                max={1}
                step={0.01}
                value={value.watermarkWidth}
                onInput={(e) => set({ watermarkWidth: text(e) })}
              />
            </label>
          </div>
        )}
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
      </fieldset>
    </details>
  );
}
