#!/usr/bin/env bash
# Step 2: Cloud SQL for PostgreSQL, the database and its user, and the two secrets the API reads
# (DATABASE_URL, SIGNING_SECRET). Idempotent; an existing password is kept.
source "$(dirname "$0")/lib.sh"

step "Cloud SQL instance $SQL_INSTANCE ($SQL_TIER, $SQL_AVAILABILITY)"
if ! gcloud sql instances describe "$SQL_INSTANCE" >/dev/null 2>&1; then
  # Takes several minutes. Public IP with no authorized networks: only the Cloud SQL connector
  # that Cloud Run mounts (IAM-checked, roles/cloudsql.client) can reach it.
  gcloud sql instances create "$SQL_INSTANCE" \
    --database-version=POSTGRES_16 --edition=ENTERPRISE --tier="$SQL_TIER" \
    --region="$REGION" --availability-type="$SQL_AVAILABILITY" \
    --storage-type=SSD --storage-size=20GB --storage-auto-increase \
    --backup-start-time=03:00 --enable-point-in-time-recovery
fi

step "Database $SQL_DATABASE"
gcloud sql databases describe "$SQL_DATABASE" --instance="$SQL_INSTANCE" >/dev/null 2>&1 ||
  gcloud sql databases create "$SQL_DATABASE" --instance="$SQL_INSTANCE"

secret_exists() { gcloud secrets describe "$1" >/dev/null 2>&1; }
add_secret() { # name, value on stdin
  secret_exists "$1" || gcloud secrets create "$1" --replication-policy=automatic >/dev/null
  gcloud secrets versions add "$1" --data-file=- >/dev/null
  echo "  secret $1: new version"
}

step "User $SQL_USER and the DATABASE_URL secret"
if ! secret_exists "${PREFIX}-database-url"; then
  password="$(openssl rand -hex 24)"
  if gcloud sql users list --instance="$SQL_INSTANCE" --format='value(name)' | grep -qx "$SQL_USER"; then
    gcloud sql users set-password "$SQL_USER" --instance="$SQL_INSTANCE" --password="$password"
  else
    gcloud sql users create "$SQL_USER" --instance="$SQL_INSTANCE" --password="$password"
  fi
  # node-postgres reads `host=/cloudsql/…` as the Unix socket directory Cloud Run mounts for
  # the instance named in the service's run.googleapis.com/cloudsql-instances annotation.
  printf 'postgresql://%s:%s@localhost/%s?host=/cloudsql/%s' "$SQL_USER" "$password" "$SQL_DATABASE" "$SQL_CONNECTION" |
    add_secret "${PREFIX}-database-url"
else
  echo "  ${PREFIX}-database-url exists; password unchanged"
fi

step "SIGNING_SECRET (signs upload and media URLs; shared by every API instance)"
secret_exists "${PREFIX}-signing-secret" || openssl rand -hex 32 | tr -d '\n' | add_secret "${PREFIX}-signing-secret"

for secret in "${PREFIX}-database-url" "${PREFIX}-signing-secret"; do
  gcloud secrets add-iam-policy-binding "$secret" --member="serviceAccount:$API_SA" \
    --role=roles/secretmanager.secretAccessor --quiet >/dev/null
  echo "  $API_SA may read $secret"
done

step "Done. Next: bash deploy/03-build.sh"
