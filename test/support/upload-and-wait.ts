import { expect } from "vitest";
import { collectSubscription, type TestApp } from "./app.ts";

const CREATE_UPLOAD = /* GraphQL */ `
  mutation CreateUpload($input: CreateUploadInput!) {
    createUpload(input: $input) {
      ... on CreateUploadSuccess { uploadUrl video { id } }
    } }`;
const FINAL_STATE = /* GraphQL */ `
  subscription($id: ID!) { videoEvents(videoId: $id) { video { id status error playable } } }`;

/** A video as the last event of its `videoEvents` subscription left it. */
export interface FinalVideo {
  id: string;
  status: string;
  error: string | null;
  playable: boolean;
}

/**
 * Creates a video waiting for its upload (with `input`'s other fields of CreateUploadInput); returns
 * its id and signed upload URL (relative).
 */
export async function createUpload(
  t: TestApp,
  title: string,
  input: Record<string, unknown> = {},
): Promise<{ id: string; uploadUrl: string }> {
  const { uploadUrl, video } = (await t.gql(CREATE_UPLOAD, { input: { ...input, title } })).data.createUpload;
  return { id: video.id, uploadUrl };
}

/**
 * Subscribes to `videoEvents` now (as the admin key unless `authorization` says otherwise) and
 * resolves with the terminal state (READY, FAILED, CANCELED) the subscription ends on.
 */
export async function finalState(t: TestApp, id: string, authorization?: string): Promise<FinalVideo> {
  const client = t.wsClient(authorization);
  const events = await collectSubscription<{ videoEvents: { video: FinalVideo } }>(client, FINAL_STATE, { id }).done;
  return events.at(-1)!.videoEvents.video;
}

/** Uploads `bytes` through an upload URL in one PUT, as a CMS does, and waits for the end state. */
export async function uploadAndWait(t: TestApp, bytes: Uint8Array<ArrayBuffer>, title = "upload"): Promise<FinalVideo> {
  const { id, uploadUrl } = await createUpload(t, title);
  const final = finalState(t, id);
  const res = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: bytes });
  expect(res.status).toBe(200);
  return final;
}
