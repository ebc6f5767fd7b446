#!/usr/bin/env bash
# Step 5: the API service. Renders deploy/api-service.yaml and applies it; applying it again after
# a change (a new IMAGE_TAG, PUBLIC_URL) rolls out a new revision.
source "$(dirname "$0")/lib.sh"

step "Cloud Run service $API_SERVICE"
rendered="$(mktemp --suffix=.yaml)"
trap 'rm -f "$rendered"' EXIT
render api-service.yaml API_SERVICE REGION SQL_CONNECTION API_SA REGISTRY IMAGE_TAG PUBLIC_URL \
  PROJECT_ID PREFIX GCS_BUCKET UPLOADS_SUB > "$rendered"
gcloud run services replace "$rendered" --region="$REGION"

# The API is the public GraphQL endpoint; it authenticates its own callers.
gcloud run services add-iam-policy-binding "$API_SERVICE" --region="$REGION" \
  --member=allUsers --role=roles/run.invoker --quiet >/dev/null

url="$(gcloud run services describe "$API_SERVICE" --region="$REGION" --format='value(status.url)')"
echo "  $url/graphql   ($url/health)"
[[ -n "$PUBLIC_URL" ]] || echo "  Set PUBLIC_URL=$url (or your domain) in deploy/env.sh and run this step again."

step "Done. Next: bash deploy/06-workers.sh"
