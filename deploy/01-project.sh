#!/usr/bin/env bash
# Step 1: APIs, the image registry, service accounts and their roles. Idempotent.
source "$(dirname "$0")/lib.sh"

step "Enabling APIs"
gcloud services enable \
  run.googleapis.com artifactregistry.googleapis.com cloudbuild.googleapis.com \
  sqladmin.googleapis.com secretmanager.googleapis.com pubsub.googleapis.com \
  storage.googleapis.com iamcredentials.googleapis.com monitoring.googleapis.com \
  parametermanager.googleapis.com

step "Artifact Registry repository $AR_REPO"
gcloud artifacts repositories describe "$AR_REPO" --location="$REGION" >/dev/null 2>&1 ||
  gcloud artifacts repositories create "$AR_REPO" --location="$REGION" --repository-format=docker \
    --description="videograph images"

step "Service accounts"
for sa in api worker autoscaler; do
  gcloud iam service-accounts describe "${PREFIX}-${sa}@${PROJECT_ID}.iam.gserviceaccount.com" >/dev/null 2>&1 ||
    gcloud iam service-accounts create "${PREFIX}-${sa}" --display-name="videograph ${sa}"
done

grant_project() {
  gcloud projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:$1" --role="$2" \
    --condition=None --quiet >/dev/null
  echo "  $1: $2"
}

step "Roles of the API ($API_SA)"
# The API creates its topics and subscriptions at every start (src/transport/pubsub.ts setup()),
# and a create it may not make fails the start rather than reading as "exists": it needs editor.
grant_project "$API_SA" roles/pubsub.editor
grant_project "$API_SA" roles/cloudsql.client
# Reads the signing secret and DATABASE_URL from Secret Manager (granted per secret in step 2).

step "Roles of the workers ($WORKER_SA)"
# Jobs in (subscriber), events out (publisher). Both narrowed to the resources in step 4 would be
# tighter; project level keeps new capabilities (a manim pool) working without another grant.
grant_project "$WORKER_SA" roles/pubsub.subscriber
grant_project "$WORKER_SA" roles/pubsub.publisher

step "Signing URLs without keys"
# On Cloud Run there is no private key: V4 signed URLs (uploads, playback, a worker's read of the
# source) are signed with the IAM signBlob API, which needs this role on the account itself.
for sa in "$API_SA" "$WORKER_SA"; do
  gcloud iam service-accounts add-iam-policy-binding "$sa" --member="serviceAccount:$sa" \
    --role=roles/iam.serviceAccountTokenCreator --quiet >/dev/null
  echo "  $sa: roles/iam.serviceAccountTokenCreator on itself"
done

step "Roles of the autoscaler ($CREMA_SA)"
# CREMA (step 7): reads its config from Parameter Manager, the backlog from Cloud Monitoring,
# and sets the worker pools' instance counts.
grant_project "$CREMA_SA" roles/parametermanager.parameterViewer
grant_project "$CREMA_SA" roles/monitoring.viewer
grant_project "$CREMA_SA" roles/run.developer
gcloud iam service-accounts add-iam-policy-binding "$WORKER_SA" --member="serviceAccount:$CREMA_SA" \
  --role=roles/iam.serviceAccountUser --quiet >/dev/null
echo "  $CREMA_SA: roles/iam.serviceAccountUser on $WORKER_SA"

step "Done. Next: bash deploy/02-cloudsql.sh"
