# Settings for the deploy scripts. Copy to deploy/env.sh, fill in, and run the scripts from the
# repository root: `bash deploy/01-project.sh` … `bash deploy/07-autoscaling.sh`. env.sh holds
# no secrets (passwords go to Secret Manager); do not commit it all the same, it names your
# project.

# The Google Cloud project and region. The region must offer Cloud Run NVIDIA L4 GPUs if you
# deploy the GPU pool (checked 2026-11-22: europe-west1, europe-west4, us-east4, asia-southeast1;
# us-central1 and asia-south1 by invitation) — https://cloud.google.com/run/docs/configuring/workerpools/gpu
export PROJECT_ID="my-project"
export REGION="europe-west1"

# Prefix of every Pub/Sub topic and subscription (PUBSUB_TOPIC_PREFIX) and of resource names.
export PREFIX="videograph"

# Artifact Registry repository for the images, and the tag this deploy builds and runs.
export AR_REPO="videograph"
export IMAGE_TAG="$(git rev-parse --short HEAD 2>/dev/null || date +%Y%m%d%H%M%S)"

# Cloud SQL for PostgreSQL (Enterprise edition). 2 vCPU / 8 GiB is enough for the API's writes
# at 80,000 videos/day (see deploy/CAPACITY.md); HA doubles the instance price.
export SQL_INSTANCE="${PREFIX}-pg"
export SQL_TIER="db-custom-2-8192"
export SQL_AVAILABILITY="REGIONAL"   # REGIONAL (HA, automatic failover) or ZONAL
export SQL_DATABASE="videograph"
export SQL_USER="videograph"

# Media bucket (sources, HLS, posters) and its upload notifications to the API.
export GCS_BUCKET="${PROJECT_ID}-${PREFIX}-media"
# Origins of the web apps that upload to and play from the bucket (CORS), comma-separated.
export CORS_ORIGINS="*"

# Cloud Run resource names.
export API_SERVICE="${PREFIX}-api"
export CPU_POOL="${PREFIX}-worker-cpu"
export GPU_POOL="${PREFIX}-worker-gpu"
export CREMA_POOL="${PREFIX}-autoscaler"

# Worker pool bounds for the autoscaler. CAPACITY.md derives the maxima for 80,000 videos/day;
# 480 CPU workers are 1,920 vCPU: raise the region's Cloud Run CPU quota to match.
export CPU_WORKERS_MIN="1"
export CPU_WORKERS_MAX="480"
export GPU_WORKERS_MIN="0"
export GPU_WORKERS_MAX="175"
# Deploy the NVENC pool too: needs L4 quota in REGION ("Total Nvidia L4 GPU allocation, per
# project per region", Cloud Run Admin API). The API sends transcodes to the nvenc topic only while
# a GPU worker heartbeats (GPU_ROUTING), so with the pool set GPU_WORKERS_MIN to 1 or more.
export DEPLOY_GPU_POOL="false"

# The API's public origin, used in URLs it hands out. Empty on the first deploy; set it to the
# service URL (or your domain) and run 05-api.sh again.
export PUBLIC_URL=""
