import { useState } from "preact/hooks";
import { formatBytes, isResumable, type UploadState, uploadFile } from "../upload.ts";
import { Link, useTitle } from "../router.tsx";
import { creationOptionsInput, DEFAULT_VIDEO_OPTIONS, VideoOptionsFields } from "../video-options.tsx";
import { LiveSummary } from "./video/progress.tsx";

interface Item {
  id: number;
  file: File;
  state: UploadState;
  resumed: boolean;
}

let nextId = 1;

/** Drag and drop (or choose) one or several files; each uploads in resumable chunks. */
export function UploadPage() {
  useTitle("Upload");
  const [items, setItems] = useState<Item[]>([]);
  const [dragging, setDragging] = useState(false);
  const [options, setOptions] = useState(DEFAULT_VIDEO_OPTIONS);

  const start = (files: FileList | null) => {
    for (const file of Array.from(files ?? [])) {
      const id = nextId++;
      setItems((current) => [...current, { id, file, state: { phase: "starting" }, resumed: isResumable(file) }]);
      void uploadFile(
        file,
        (state) => setItems((current) => current.map((item) => (item.id === id ? { ...item, state } : item))),
        creationOptionsInput(options),
      );
    }
  };

  return (
    <section aria-labelledby="upload-title">
      <h1 id="upload-title">Upload</h1>
      <p class="muted">The options apply to the files chosen after them.</p>
      <VideoOptionsFields id="upload" value={options} onChange={setOptions} />
      <section
        aria-label="Drop zone for video files"
        class={`dropzone${dragging ? " dragging" : ""}`}
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(event) => {
          event.preventDefault();
          setDragging(false);
          start(event.dataTransfer?.files ?? null);
        }}
      >
        <p>Drop video files here, or</p>
        <label class="button">
          Choose files
          <input
            type="file"
            accept="video/*,audio/*,.mkv,.mov,.ts,.mts"
            multiple
            class="visually-hidden"
            data-testid="file-input"
            onChange={(e) => {
              const input = e.target as HTMLInputElement;
              start(input.files);
              input.value = "";
            }}
          />
        </label>
        <p class="muted">
          Uploads go in 8 MiB chunks and resume after a dropped connection. After a page reload, choose the same file
          again: it continues where the server stopped.
        </p>
      </section>
      <ul class="uploads" aria-label="Uploads">
        {items.map((item) => (
          <li key={item.id} class="upload-item">
            <UploadRow item={item} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function UploadRow({ item }: { item: Item }) {
  const { file, state } = item;
  const name = (
    <strong>
      {file.name} <span class="muted">({formatBytes(file.size)})</span>
    </strong>
  );
  switch (state.phase) {
    case "refused":
    case "failed":
      return (
        <>
          {name}
          <p role="alert" class="error">
            {state.phase === "refused" ? "Refused: " : "Failed: "}
            {state.message}
          </p>
        </>
      );
    case "starting":
      return (
        <>
          {name} <span class="muted">{item.resumed ? "resuming…" : "starting…"}</span>
        </>
      );
    case "uploading":
      return (
        <>
          {name}
          <label class="bar">
            <span>
              Upload {Math.floor((state.sent / state.total) * 100)}% ({formatBytes(state.sent)})
            </span>
            <progress max={state.total} value={state.sent} />
          </label>
          {state.retrying && <p class="warning">{state.retrying}</p>}
        </>
      );
    case "done":
      return (
        <>
          {name} uploaded. <Link href={`/videos/${state.videoId}`}>Open the video</Link>
          <LiveSummary videoId={state.videoId} />
        </>
      );
  }
}
