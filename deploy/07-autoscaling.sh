#!/usr/bin/env bash
# Step 7: scale the worker pools on their subscription backlog. Deploys CREMA (Google's KEDA-based
# autoscaler for Cloud Run) as a small worker pool of its own, with deploy/crema-config.yaml
# stored in Parameter Manager. Run again after changing the bounds in deploy/env.sh.
source "$(dirname "$0")/lib.sh"

CREMA_IMAGE="${CREMA_IMAGE:-us-central1-docker.pkg.dev/cloud-run-oss-images/crema-v1/autoscaler:1.0}"
PARAMETER="${PREFIX}-crema-config"
VERSION="v$(date +%Y%m%d%H%M%S)"

export CPU_WORKERS_MIN CPU_WORKERS_MAX GPU_WORKERS_MIN GPU_WORKERS_MAX
GPU_SCALED_OBJECT=""
if [[ "${DEPLOY_GPU_POOL:-false}" == "true" ]]; then
  GPU_SCALED_OBJECT="$(render crema-gpu.yaml PROJECT_ID REGION GPU_POOL GPU_WORKERS_MIN GPU_WORKERS_MAX JOBS_SUB_NVENC)"
fi
export GPU_SCALED_OBJECT

config="$(mktemp --suffix=.yaml)"
trap 'rm -f "$config"' EXIT
render crema-config.yaml PROJECT_ID REGION CPU_POOL CPU_WORKERS_MIN CPU_WORKERS_MAX JOBS_SUB_CPU GPU_SCALED_OBJECT \
  > "$config"

step "CREMA configuration: parameter $PARAMETER, version $VERSION"
gcloud parametermanager parameters describe "$PARAMETER" --location=global >/dev/null 2>&1 ||
  gcloud parametermanager parameters create "$PARAMETER" --location=global --parameter-format=YAML
gcloud parametermanager parameters versions create "$VERSION" --location=global \
  --parameter="$PARAMETER" --payload-data-from-file="$config"

step "CREMA worker pool $CREMA_POOL"
crema_config="projects/${PROJECT_ID}/locations/global/parameters/${PARAMETER}/versions/${VERSION}"
gcloud beta run worker-pools deploy "$CREMA_POOL" --region="$REGION" \
  --image="$CREMA_IMAGE" \
  --service-account="$CREMA_SA" \
  --cpu=1 --memory=1Gi \
  --set-env-vars="CREMA_CONFIG=${crema_config},OUTPUT_SCALER_METRICS=False,ENABLE_CLOUD_LOGGING=False" \
  --labels=app=videograph,role=autoscaler \
  "$(worker_pool_count_flag)=1"

step "Done. CREMA logs '[SCALER] Recommended instances …' every 30 s" \
  "(Logs Explorer: \"[SCALER]\" OR \"[METRIC-PROVIDER]\")."
