import { useEffect, useState } from "preact/hooks";
import { type ResultOf, request, requestWithFile } from "./graphql.ts";
import { AssetsQuery, UploadAssetMutation } from "./operations.ts";

export type Asset = ResultOf<typeof AssetsQuery>["assets"][number];
type AssetKind = Asset["kind"];

/** The tenant's assets; forms of one page that mount together share the request. */
let loading: Promise<Asset[]> | null = null;

function loadAssets(): Promise<Asset[]> {
  loading ??= request(AssetsQuery, {})
    .then((data) => data.assets)
    .finally(() => {
      loading = null;
    });
  return loading;
}

/** The tenant's assets, read when the component mounts, and `reload` for after an upload. */
export function useAssets(onError: (message: string) => void) {
  const [assets, setAssets] = useState<Asset[]>([]);
  const reload = () =>
    loadAssets()
      .then(setAssets)
      .catch((err: Error) => onError(err.message));
  useEffect(() => {
    void reload();
  }, []);
  return { assets, reload };
}

/**
 * One asset of `kind`: chosen from the tenant's (`assets`) or uploaded here, after which the list
 * is read again and the new asset chosen. A refused upload's reason goes to `onError`.
 */
export function AssetPicker(props: {
  id: string;
  kind: AssetKind;
  label: string;
  /** The first option's text, for no asset. */
  noneLabel: string;
  accept: string;
  uploadLabel: string;
  value: string;
  onChange: (assetId: string) => void;
  assets: Asset[];
  reload: () => Promise<void>;
  onError: (message: string | null) => void;
}) {
  const { id, kind, value, onChange, onError } = props;
  return (
    <div class="asset-row">
      <label for={id}>{props.label}</label>
      <select id={id} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        <option value="">{props.noneLabel}</option>
        {props.assets
          .filter((a) => a.kind === kind)
          .map((a) => (
            <option key={a.id} value={a.id}>
              {a.name}
            </option>
          ))}
      </select>
      <label class="button secondary">
        Upload…
        <input
          type="file"
          class="visually-hidden"
          accept={props.accept}
          aria-label={props.uploadLabel}
          onChange={async (e) => {
            const file = (e.target as HTMLInputElement).files?.[0];
            if (!file) return;
            onError(null);
            try {
              const result = (await requestWithFile(UploadAssetMutation, { file, kind })).uploadAsset;
              if (result.__typename === "UploadAssetSuccess") {
                await props.reload();
                onChange(result.asset.id);
              } else onError(result.message);
            } catch (err) {
              onError((err as Error).message);
            }
          }}
        />
      </label>
    </div>
  );
}
