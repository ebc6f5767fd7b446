import { ImportUrlJobMessage } from "../../protocol/source-messages.ts";
import { sourceKey } from "../../protocol/storage-layout.ts";
import { inputColumn, type JobKindModule, noEstimate } from "./job-kind-module.ts";

const input = ImportUrlJobMessage.pick({ url: true });

/** A source downloaded from a tenant's URL to a video's source. */
export const importUrl = {
  input,
  row: inputColumn,
  capability: "cpu",
  gpuEncodable: false,
  messageType: "import_url",
  buildMessage: ({ job, input, settings, envelope }) => ({
    ...envelope,
    type: "import_url",
    url: input.url,
    maxBytes: settings.urlImport.maxBytes,
    allowPrivateAddresses: settings.urlImport.allowPrivateAddresses,
    outputKey: sourceKey(job.videoId, "import"),
  }),
  ratePoints: 5,
  onLastFailure: "fail the video",
  estimateAtEnqueue: noEstimate,
} satisfies JobKindModule<typeof input, "import_url">;
