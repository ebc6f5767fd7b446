#!/usr/bin/env bash
# Step 6: the render workers as Cloud Run worker pools: always-on instances with no URL that pull
# jobs from Pub/Sub. A CPU pool (libx264) and, with DEPLOY_GPU_POOL=true, an NVIDIA L4 pool
# (h264_nvenc). Both start at their minimum; step 7 scales them on the subscription backlog.
source "$(dirname "$0")/lib.sh"

count_flag="$(worker_pool_count_flag)"
help="$(gcloud beta run worker-pools deploy --help 2>/dev/null || true)"

# Shared by both pools. SHUTDOWN_GRACE_SECONDS < 10: Cloud Run sends SIGKILL 10 s after SIGTERM,
# and a job handed back before that is redelivered at once instead of after its lease.
common_env="TRANSPORT=pubsub,GOOGLE_CLOUD_PROJECT=${PROJECT_ID},PUBSUB_TOPIC_PREFIX=${PREFIX}"
common_env+=",STORAGE=gcs,GCS_BUCKET=${GCS_BUCKET},WORKER_CONCURRENCY=1,WORKER_TMP_DIR=/tmp"
common_env+=",SHUTDOWN_GRACE_SECONDS=8,JOB_STALL_SECONDS=60,LOG_LEVEL=info"

step "CPU worker pool $CPU_POOL (4 vCPU, 16 GiB, libx264)"
# Worker pools always run in the second generation environment with CPU always allocated
# (https://cloud.google.com/run/docs/about-execution-environments); there is no request and so
# no request timeout: a job runs as long as its Pub/Sub lease is renewed (up to 6 h).
gcloud beta run worker-pools deploy "$CPU_POOL" --region="$REGION" \
  --image="${REGISTRY}/worker:${IMAGE_TAG}" \
  --service-account="$WORKER_SA" \
  --cpu=4 --memory=16Gi \
  --set-env-vars="${common_env},WORKER_CAPABILITIES=cpu" \
  --labels=app=videograph,role=worker-cpu \
  "${count_flag}=${CPU_WORKERS_MIN}"

if [[ "${DEPLOY_GPU_POOL:-false}" == "true" ]]; then
  step "GPU worker pool $GPU_POOL (NVIDIA L4, 4 vCPU, 16 GiB, h264_nvenc)"
  if ! grep -q -- '--gpu-type' <<<"$help"; then
    echo "This gcloud ($(gcloud version --format='value(core)' 2>/dev/null)) has no --gpu-type for worker pools:" \
      "run 'gcloud components update'." >&2
    exit 1
  fi
  # Starts with one instance, so its log shows the NVENC probe; the autoscaler takes it down to
  # GPU_WORKERS_MIN. L4 needs at least 4 vCPU and 16 GiB
  # (https://cloud.google.com/run/docs/configuring/workerpools/gpu).
  # Without zonal redundancy the GPU-second is cheaper; a zone outage then stops this pool, and
  # its jobs wait in the subscription (or go to the CPU pool if you route them there).
  gcloud beta run worker-pools deploy "$GPU_POOL" --region="$REGION" \
    --image="${REGISTRY}/worker-gpu:${IMAGE_TAG}" \
    --service-account="$WORKER_SA" \
    --cpu=4 --memory=16Gi --gpu=1 --gpu-type=nvidia-l4 --no-gpu-zonal-redundancy \
    --set-env-vars="${common_env},WORKER_CAPABILITIES=nvenc" \
    --labels=app=videograph,role=worker-gpu \
    "${count_flag}=1"
fi

step "Done. Check a worker's log for 'worker ready' (and, on the GPU pool, 'NVENC probe encode succeeded')," \
  "then: bash deploy/07-autoscaling.sh"
