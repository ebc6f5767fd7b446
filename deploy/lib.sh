# Shared by the numbered deploy scripts: loads deploy/env.sh and checks what every step needs.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$DEPLOY_DIR/.." && pwd)"

if [[ ! -f "$DEPLOY_DIR/env.sh" ]]; then
  echo "deploy/env.sh is missing: copy deploy/env.example.sh to deploy/env.sh and fill it in." >&2
  exit 2
fi
# shellcheck source=env.example.sh
source "$DEPLOY_DIR/env.sh"

for tool in gcloud envsubst; do
  command -v "$tool" >/dev/null || { echo "$tool is required (envsubst comes with gettext)." >&2; exit 2; }
done
for var in PROJECT_ID REGION PREFIX AR_REPO IMAGE_TAG SQL_INSTANCE SQL_DATABASE SQL_USER GCS_BUCKET API_SERVICE \
  CPU_POOL GPU_POOL; do
  [[ -n "${!var:-}" ]] || { echo "$var is empty in deploy/env.sh" >&2; exit 2; }
done

gcloud config set project "$PROJECT_ID" >/dev/null
PROJECT_NUMBER="$(gcloud projects describe "$PROJECT_ID" --format='value(projectNumber)')"
REGISTRY="${REGION}-docker.pkg.dev/${PROJECT_ID}/${AR_REPO}"
API_SA="${PREFIX}-api@${PROJECT_ID}.iam.gserviceaccount.com"
WORKER_SA="${PREFIX}-worker@${PROJECT_ID}.iam.gserviceaccount.com"
CREMA_SA="${PREFIX}-autoscaler@${PROJECT_ID}.iam.gserviceaccount.com"
PUBSUB_AGENT="service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
SQL_CONNECTION="${PROJECT_ID}:${REGION}:${SQL_INSTANCE}"
export PROJECT_NUMBER REGISTRY API_SA WORKER_SA CREMA_SA PUBSUB_AGENT SQL_CONNECTION

# Names the API and workers derive from PREFIX (src/protocol/queues.ts pubSubResourceNames).
JOBS_SUB_CPU="${PREFIX}-render-jobs-cpu-workers"
JOBS_SUB_NVENC="${PREFIX}-render-jobs-nvenc-workers"
JOBS_SUB_MANIM="${PREFIX}-render-jobs-manim-workers"
EVENTS_TOPIC="${PREFIX}-render-events"
DEAD_LETTER_TOPIC="${PREFIX}-dead-letter"
# scripts/setup-gcs.ts's defaults for the bucket notifications.
UPLOADS_TOPIC="${PREFIX}-gcs-object-finalize"
UPLOADS_SUB="${PREFIX}-gcs-object-finalize-api"
export JOBS_SUB_CPU JOBS_SUB_NVENC JOBS_SUB_MANIM EVENTS_TOPIC DEAD_LETTER_TOPIC UPLOADS_TOPIC UPLOADS_SUB

step() { printf '\n== %s\n' "$*"; }

# Renders a template from deploy/ with only the listed variables substituted, so `$` elsewhere
# in the file stays as written.
render() {
  local template="$1"; shift
  local vars=""
  for v in "$@"; do vars+="\${$v} "; done
  envsubst "$vars" < "$DEPLOY_DIR/$template"
}

# Worker-pool scaling flag: releases up to mid-2025 call it --scaling, later ones --instances.
worker_pool_count_flag() {
  if gcloud beta run worker-pools deploy --help 2>/dev/null | grep -q -- '--instances='; then
    echo "--instances"
  else
    echo "--scaling"
  fi
}
