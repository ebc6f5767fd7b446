import { graphql } from "./graphql.ts";

/** The Live page's operations: streams, their keys and switch, simulcast targets, and their events. */

const LiveStreamFields = graphql(`
  fragment LiveStreamFields on LiveStream {
    id title status latencyMode recording playbackPolicy streamKeyHint disabled lastError ingestUrl createdAt
    activeVideo { id title status playable playbackUrl posterUrl duration }
    simulcastTargets { id name url streamKey state lastError }
  }
`);

export const LiveStreamsQuery = graphql(
  `
  query LiveStreams { liveStreams { ...LiveStreamFields } liveUsage { secondsUsed minutesLimit } }
`,
  [LiveStreamFields],
);

export const CreateLiveStreamMutation = graphql(`
  mutation CreateLiveStream($input: CreateLiveStreamInput) {
    createLiveStream(input: $input) {
      __typename
      ... on LiveStreamWithKey { streamKey srtUrl liveStream { id } }
      ... on ValidationError { field message }
    }
  }
`);

export const RotateLiveStreamKeyMutation = graphql(`
  mutation RotateLiveStreamKey($id: ID!) {
    rotateLiveStreamKey(id: $id) { __typename ... on LiveStreamWithKey { streamKey srtUrl } ... on Error { message } }
  }
`);

export const SetLiveStreamEnabledMutation = graphql(`
  mutation SetLiveStreamEnabled($id: ID!, $enabled: Boolean!) {
    setLiveStreamEnabled(id: $id, enabled: $enabled) { __typename ... on Error { message } }
  }
`);

export const AddSimulcastTargetMutation = graphql(`
  mutation AddSimulcastTarget($input: AddSimulcastTargetInput!) {
    addSimulcastTarget(input: $input) { __typename ... on Error { message } }
  }
`);

export const RemoveSimulcastTargetMutation = graphql(`
  mutation RemoveSimulcastTarget($id: ID!) {
    removeSimulcastTarget(id: $id) { __typename ... on Error { message } }
  }
`);

export const LiveStreamEventsSubscription = graphql(
  `
  subscription LiveStreamEvents($id: ID!) {
    liveStreamEvents(id: $id) {
      health { mediaSeconds fps speed segments behindSeconds inputBitrate renditions { name bitrate copied } }
      liveStream { ...LiveStreamFields }
    }
  }
`,
  [LiveStreamFields],
);
