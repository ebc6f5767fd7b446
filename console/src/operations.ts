import { graphql } from "./graphql.ts";

const VideoSummary = graphql(`
  fragment VideoSummary on Video {
    id
    title
    status
    playable
    duration
    posterUrl
    createdAt
    source
    playbackPolicy
    error
  }
`);

const VariantFields = graphql(`
  fragment VariantFields on Variant {
    id
    name
    kind
    status
    progress
    width
    height
    bandwidth
    peakBitRate
    averageBitRate
    playlistUrl
    segmentCount
    error
  }
`);

const QueuePositionFields = graphql(`
  fragment QueuePositionFields on QueuePosition {
    position
    jobsAhead
    slots
    estimatedStartSeconds
    estimatedStartAt
    estimatedAt
  }
`);

export const VideoFields = graphql(
  `
  fragment VideoFields on Video {
    ...VideoSummary
    playbackUrl
    dashUrl
    segmentFormat
    contentProtection { method keyRotationSegments }
    width
    height
    fps
    hasAudio
    uploadSize
    uploadedBytes
    playableAt
    finishedAt
    variants { ...VariantFields }
  }
`,
  [VideoSummary, VariantFields],
);

export const VideosQuery = graphql(
  `
  query Videos($filter: VideoFilter, $orderBy: VideoOrder, $first: Int, $after: String, $last: Int, $before: String) {
    videos(filter: $filter, orderBy: $orderBy, first: $first, after: $after, last: $last, before: $before) {
      edges { node { ...VideoSummary tags queuePosition { ...QueuePositionFields } } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
`,
  [VideoSummary, QueuePositionFields],
);

export const VideoQuery = graphql(
  `
  query Video($id: ID!) {
    video(id: $id) { ...VideoFields }
  }
`,
  [VideoFields],
);

/**
 * Where a queued video stands. Read once when a video is (or turns) QUEUED; after that the
 * subscription's QueuePositionEvents carry it, so events need not select `video { queuePosition }`
 * (a database read per subscriber per event).
 */
export const VideoQueuePositionQuery = graphql(
  `
  query VideoQueuePosition($id: ID!) {
    video(id: $id) { id status queuePosition { ...QueuePositionFields } }
  }
`,
  [QueuePositionFields],
);

/** Estimated and actual costs: the jobs:admin scope; anyone else gets FORBIDDEN and sees none. */
export const VideoCostQuery = graphql(`
  query VideoCost($id: ID!) {
    video(id: $id) {
      id
      cost { jobCount estimatedUsd actualUsd cpuSeconds wallSeconds }
      jobs(first: 20, chunks: false) {
        edges {
          node {
            id cost { estimatedUsd estimateBasis actualUsd cpuSeconds wallSeconds }
            chunks { id cost { estimatedUsd estimateBasis actualUsd cpuSeconds wallSeconds } }
          }
        }
      }
    }
  }
`);

/** What the video page shows of a job: a transcode's and each of its chunks' alike. */
const JobFields = graphql(`
  fragment JobFields on Job {
    id kind status attempt maxAttempts progress error rungs dispatchedTo createdAt finishedAt
    chunk { index fromSeconds toSeconds }
    runs { id attempt status workerId startedAt finishedAt command stderrTail exitCode error }
  }
`);

/**
 * The video's jobs, without a split transcode's chunk jobs: `ChunkJobsQuery` reads those under their
 * transcode (a long video's chunks would fill the page, and one query for both costs more than the
 * API's limit).
 */
export const VideoJobsQuery = graphql(
  `
  query VideoJobs($id: ID!) {
    video(id: $id) {
      id
      transcodeChunks { total done }
      jobs(first: 20, chunks: false) { edges { node { ...JobFields } } }
    }
  }
`,
  [JobFields],
);

/** A fresh `playbackUrl` (a SIGNED video's carries a new opening token), for a player whose session ended. */
export const VideoPlaybackUrlQuery = graphql(`
  query VideoPlaybackUrl($id: ID!) {
    video(id: $id) { id playbackUrl }
  }
`);

/** A split transcode's chunk jobs, in source order. */
export const ChunkJobsQuery = graphql(
  `
  query ChunkJobs($id: ID!) {
    job(id: $id) { id chunks { ...JobFields } }
  }
`,
  [JobFields],
);

export const VideoEventsSubscription = graphql(
  `
  subscription VideoEvents($videoId: ID!) {
    videoEvents(videoId: $videoId) {
      __typename
      video { ...VideoFields }
      ... on VariantProgressEvent { fps speed etaSeconds variant { id progress } }
      ... on RenderProgressEvent { index count percent description renderedCount cachedCount }
      ... on QueuePositionEvent { position { ...QueuePositionFields } }
    }
  }
`,
  [VideoFields, QueuePositionFields],
);

export const CreateUploadMutation = graphql(`
  mutation CreateUpload($input: CreateUploadInput!) {
    createUpload(input: $input) {
      __typename
      ... on CreateUploadSuccess { uploadUrl maxBytes video { id } }
      ... on FileTooLargeError { maxBytes }
      ... on Error { message }
    }
  }
`);

export const CancelVideoMutation = graphql(`
  mutation CancelVideo($id: ID!) {
    cancelVideo(id: $id) { __typename ... on Error { message } }
  }
`);

export const DeleteVideoMutation = graphql(`
  mutation DeleteVideo($id: ID!) {
    deleteVideo(id: $id) { __typename ... on Error { message } }
  }
`);

export const RetryVariantMutation = graphql(`
  mutation RetryVariant($id: ID!) {
    retryVariant(id: $id) { __typename ... on Error { message } }
  }
`);

export const CancelJobMutation = graphql(`
  mutation CancelJob($id: ID!) {
    cancelJob(id: $id) { __typename ... on Error { message } }
  }
`);

export const RenderManimMutation = graphql(`
  mutation RenderManim($input: RenderManimInput!) {
    renderManim(input: $input) {
      __typename
      ... on RenderSuccess { video { id } }
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

export const RenderCompositionMutation = graphql(`
  mutation RenderComposition($input: RenderCompositionInput!) {
    renderComposition(input: $input) {
      __typename
      ... on RenderSuccess { video { id } }
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

export const CreateVideoFromUrlMutation = graphql(`
  mutation CreateVideoFromUrl($input: CreateVideoFromUrlInput!) {
    createVideoFromUrl(input: $input) {
      __typename
      ... on RenderSuccess { video { id } }
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

export const AssetsQuery = graphql(`
  query Assets {
    assets { id kind name size }
  }
`);

export const UploadAssetMutation = graphql(`
  mutation UploadAsset($file: File!, $kind: AssetKind!) {
    uploadAsset(file: $file, kind: $kind) {
      __typename
      ... on UploadAssetSuccess { asset { id kind name size } }
      ... on Error { message }
    }
  }
`);

export const WebhooksQuery = graphql(`
  query Webhooks {
    webhookEndpoints {
      id url events enabled createdAt
      deliveries(first: 10) {
        edges {
          node { id eventType status attemptCount lastStatusCode lastError createdAt deliveredAt nextAttemptAt }
        }
      }
    }
  }
`);

/** One delivery's body and attempts, read when its row is opened (the table leaves them out). */
export const WebhookDeliveryQuery = graphql(`
  query WebhookDelivery($id: ID!) {
    webhookDelivery(id: $id) { id eventId payload attempts { id at statusCode error durationMs } }
  }
`);

export const CreateWebhookEndpointMutation = graphql(`
  mutation CreateWebhookEndpoint($input: CreateWebhookEndpointInput!) {
    createWebhookEndpoint(input: $input) {
      __typename
      ... on CreateWebhookEndpointSuccess { secret endpoint { id } }
      ... on Error { message }
    }
  }
`);

export const DeleteWebhookEndpointMutation = graphql(`
  mutation DeleteWebhookEndpoint($id: ID!) {
    deleteWebhookEndpoint(id: $id) { __typename ... on Error { message } }
  }
`);

export const ResendWebhookDeliveryMutation = graphql(`
  mutation ResendWebhookDelivery($id: ID!) {
    resendWebhookDelivery(id: $id) { __typename ... on Error { message } }
  }
`);

export const ApiKeysQuery = graphql(`
  query ApiKeys {
    apiKeys(first: 50) {
      edges { node { id name prefix scopes state createdAt lastUsedAt expiresAt revokedAt } }
    }
  }
`);

export const CreateApiKeyMutation = graphql(`
  mutation CreateApiKey($input: CreateApiKeyInput!) {
    createApiKey(input: $input) {
      __typename
      ... on CreateApiKeySuccess { secret apiKey { id } }
      ... on Error { message }
    }
  }
`);

export const RotateApiKeyMutation = graphql(`
  mutation RotateApiKey($input: RotateApiKeyInput!) {
    rotateApiKey(input: $input) {
      __typename
      ... on RotateApiKeySuccess { secret apiKey { id } }
      ... on Error { message }
    }
  }
`);

export const RevokeApiKeyMutation = graphql(`
  mutation RevokeApiKey($id: ID!) {
    revokeApiKey(id: $id) { __typename ... on Error { message } }
  }
`);

/** The CMS's fields of a video, which events leave out: read once for the page's editor. */
export const VideoDetailsQuery = graphql(`
  query VideoDetails($id: ID!) {
    video(id: $id) { id title description tags externalId metadata { key value } }
  }
`);

export const UpdateVideoMutation = graphql(`
  mutation UpdateVideo($input: UpdateVideoInput!) {
    updateVideo(input: $input) {
      __typename
      ... on UpdateVideoSuccess { video { id title description tags externalId metadata { key value } } }
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

const CaptionFields = graphql(`
  fragment CaptionFields on Caption {
    id name language default forced hearingImpaired autoselect cueCount url source status progress error
  }
`);

export const VideoCaptionsQuery = graphql(
  `
  query VideoCaptions($id: ID!) {
    video(id: $id) { id captions { ...CaptionFields } }
  }
`,
  [CaptionFields],
);

/** Sends the file's text (`text`), which the API takes as it takes a multipart `file`. */
export const AddCaptionMutation = graphql(`
  mutation AddCaption($input: AddCaptionInput!) {
    addCaption(input: $input) {
      __typename
      ... on AddCaptionSuccess { caption { id } }
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

/** Speech recognition on a worker with `asr`: English only. */
export const GenerateCaptionsMutation = graphql(`
  mutation GenerateCaptions($input: GenerateCaptionsInput!) {
    generateCaptions(input: $input) {
      __typename
      ... on GenerateCaptionsSuccess { caption { id } }
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

export const UpdateCaptionMutation = graphql(`
  mutation UpdateCaption($id: ID!, $input: UpdateCaptionInput!) {
    updateCaption(id: $id, input: $input) {
      __typename
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

export const RemoveCaptionMutation = graphql(`
  mutation RemoveCaption($id: ID!) {
    removeCaption(id: $id) { __typename ... on Error { message } }
  }
`);

export const VideoAudioTracksQuery = graphql(`
  query VideoAudioTracks($id: ID!) {
    video(id: $id) { id status audioTracks { id name language default status error sourceDuration } }
  }
`);

/** A track from a file, sent as a GraphQL multipart request (`requestWithFile`). */
export const AddAudioTrackFileMutation = graphql(`
  mutation AddAudioTrackFile($videoId: ID!, $language: String!, $name: String!, $default: Boolean, $file: File!) {
    addAudioTrack(input: { videoId: $videoId, language: $language, name: $name, default: $default, file: $file }) {
      __typename
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

export const AddAudioTrackUrlMutation = graphql(`
  mutation AddAudioTrackUrl($input: AddAudioTrackInput!) {
    addAudioTrack(input: $input) {
      __typename
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

export const UpdateAudioTrackMutation = graphql(`
  mutation UpdateAudioTrack($id: ID!, $input: UpdateAudioTrackInput!) {
    updateAudioTrack(id: $id, input: $input) { __typename ... on Error { message } }
  }
`);

export const RemoveAudioTrackMutation = graphql(`
  mutation RemoveAudioTrack($id: ID!) {
    removeAudioTrack(id: $id) { __typename ... on Error { message } }
  }
`);

const StaticRenditionFields = graphql(`
  fragment StaticRenditionFields on StaticRendition {
    name status downloadUrl sizeBytes width height bitrate error
  }
`);

export const VideoStaticRenditionsQuery = graphql(
  `
  query VideoStaticRenditions($id: ID!) {
    video(id: $id) { id status staticRenditions { ...StaticRenditionFields } }
  }
`,
  [StaticRenditionFields],
);

export const RequestStaticRenditionsMutation = graphql(`
  mutation RequestStaticRenditions($videoId: ID!, $names: [StaticRenditionName!]!) {
    requestStaticRenditions(videoId: $videoId, names: $names) {
      __typename
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

export const CreateClipMutation = graphql(`
  mutation CreateClip($input: CreateClipInput!) {
    createClip(input: $input) {
      __typename
      ... on CreateClipSuccess { video { id } }
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
`);

/** A JPEG of one frame; a time or width out of range is a BAD_USER_INPUT error naming it. */
export const VideoThumbnailQuery = graphql(`
  query VideoThumbnail($id: ID!, $time: Float!, $width: Int) {
    video(id: $id) { id thumbnailUrl(time: $time, width: $width) }
  }
`);

/** An animated WebP or GIF of a range; a range or width out of bounds is a BAD_USER_INPUT error. */
export const VideoAnimatedPreviewQuery = graphql(`
  query VideoAnimatedPreview($id: ID!, $start: Float!, $end: Float!, $width: Int, $format: AnimatedPreviewFormat) {
    video(id: $id) { id animatedPreviewUrl(start: $start, end: $end, width: $width, format: $format) }
  }
`);

/** The storyboard's WebVTT, for the player's scrub bar: made once the video is playable. */
export const VideoStoryboardQuery = graphql(`
  query VideoStoryboard($id: ID!) {
    video(id: $id) { id storyboard { vttUrl intervalSeconds } }
  }
`);

export const VideoAnalyticsQuery = graphql(`
  query VideoAnalytics($id: ID!, $from: DateTime!, $to: DateTime!) {
    video(id: $id) { id analytics(from: $from, to: $to) {
      views uniqueViewers watchTimeSeconds startupTimeP50Ms startupTimeP95Ms rebufferRatio
      rebufferCount failureRate completionRate topRenditions { height share }
      timeline { at views startupTimeP50Ms startupTimeP95Ms rebufferRatio } } }
  }
`);
export const TenantAnalyticsQuery = graphql(`
  query TenantAnalytics($from: DateTime!, $to: DateTime!) {
    tenantAnalytics(from: $from, to: $to) {
      views uniqueViewers watchTimeSeconds startupTimeP50Ms startupTimeP95Ms rebufferRatio
      rebufferCount failureRate completionRate topRenditions { height share }
      timeline { at views startupTimeP50Ms startupTimeP95Ms rebufferRatio } }
  }
`);
export const ViewersNowSubscription = graphql(`
  subscription ViewersNow($videoId: ID!) { viewersNow(videoId: $videoId) }
`);

export const VideoChaptersQuery = graphql(`
  query VideoChapters($id: ID!) {
    video(id: $id) { id duration chapters { startSeconds endSeconds title } chaptersUrl }
  }
`);

export const SetChaptersMutation = graphql(`
  mutation SetChapters($input: SetChaptersInput!) {
    setChapters(input: $input) {
      __typename
      ... on SetChaptersSuccess { video { id chapters { startSeconds endSeconds title } chaptersUrl } }
      ... on ValidationError { message field }
      ... on NotFoundError { message }
    }
  }
`);
