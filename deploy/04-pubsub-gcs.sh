#!/usr/bin/env bash
# Step 4: Pub/Sub topics and subscriptions, the dead-letter grants, the media bucket, its upload
# notifications and CORS. Runs the repository's own setup scripts with your Application Default
# Credentials (`gcloud auth application-default login`), so it needs Node 24 and `npm ci` here.
# Idempotent.
source "$(dirname "$0")/lib.sh"
cd "$REPO_DIR"
[[ -d node_modules ]] || npm ci --no-audit --no-fund

step "Pub/Sub: npm run setup:pubsub"
# The API also runs this at every start; running it now lets the grants below name the
# resources, and lets workers start before the API.
GOOGLE_CLOUD_PROJECT="$PROJECT_ID" PUBSUB_TOPIC_PREFIX="$PREFIX" npm run --silent setup:pubsub

step "Dead-lettering: grants to the Pub/Sub service agent $PUBSUB_AGENT"
# Without these, messages past maxDeliveryAttempts (10) are redelivered for ever instead of
# moving to the dead-letter topic (src/transport/pubsub.ts, scripts/setup-pubsub.ts).
gcloud pubsub topics add-iam-policy-binding "$DEAD_LETTER_TOPIC" \
  --member="serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.publisher --quiet >/dev/null
for sub in "$JOBS_SUB_CPU" "$JOBS_SUB_NVENC" "$JOBS_SUB_MANIM"; do
  gcloud pubsub subscriptions add-iam-policy-binding "$sub" \
    --member="serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.subscriber --quiet >/dev/null
  echo "  $sub: the service agent may forward dead letters"
done

step "Media bucket gs://$GCS_BUCKET"
gcloud storage buckets describe "gs://$GCS_BUCKET" >/dev/null 2>&1 ||
  gcloud storage buckets create "gs://$GCS_BUCKET" --location="$REGION" \
    --uniform-bucket-level-access --public-access-prevention

step "Upload notifications and CORS: npm run setup:gcs"
# OBJECT_FINALIZE under videos/ to $UPLOADS_TOPIC (published by the Cloud Storage service agent),
# the API's subscription $UPLOADS_SUB, and CORS for browsers that PUT to upload sessions and GET
# segments cross-origin.
GOOGLE_CLOUD_PROJECT="$PROJECT_ID" PUBSUB_TOPIC_PREFIX="$PREFIX" GCS_BUCKET="$GCS_BUCKET" \
  GCS_NOTIFICATION_TOPIC="$UPLOADS_TOPIC" GCS_NOTIFICATION_SUBSCRIPTION="$UPLOADS_SUB" \
  GCS_CORS_ORIGINS="${CORS_ORIGINS:-*}" npm run --silent setup:gcs

step "Bucket access for the API and the workers"
for sa in "$API_SA" "$WORKER_SA"; do
  gcloud storage buckets add-iam-policy-binding "gs://$GCS_BUCKET" \
    --member="serviceAccount:$sa" --role=roles/storage.objectAdmin --quiet >/dev/null
  echo "  $sa: roles/storage.objectAdmin on gs://$GCS_BUCKET"
done

step "Done. Next: bash deploy/05-api.sh"
