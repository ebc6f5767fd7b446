#!/usr/bin/env bash
# Step 3: build and push the images with Cloud Build. BUILD_MANIM=true also builds the Manim one.
source "$(dirname "$0")/lib.sh"

step "Building ${REGISTRY}/{api,worker,worker-gpu}:${IMAGE_TAG}"
cd "$REPO_DIR"
gcloud builds submit --region="$REGION" --config=deploy/cloudbuild.yaml \
  --substitutions="_REGISTRY=${REGISTRY},_TAG=${IMAGE_TAG},_MANIM=${BUILD_MANIM:-false}" .

step "Done. Next: bash deploy/04-pubsub-gcs.sh"
