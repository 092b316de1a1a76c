#!/usr/bin/env bash
# Run the scoring job on Dataproc Serverless (no cluster to manage).
#   k8s/dataproc/submit.sh CAMPAIGN_ID
# Needs: gcloud, a bucket for code and data, a config API reachable from the VPC, and the
# users Parquet and model in GCS. Parquet stays the default output; set OUTPUT to
# bigquery:PROJECT.DATASET.TABLE to write to BigQuery (the connector ships with Dataproc
# Serverless runtimes).
set -euo pipefail

CAMPAIGN_ID="${1:?usage: $0 CAMPAIGN_ID}"
PROJECT="${PROJECT:?set PROJECT (GCP project id)}"
REGION="${REGION:-europe-west1}"
BUCKET="${BUCKET:?set BUCKET (gs://... without trailing slash)}"
CONFIG_API_URL="${CONFIG_API_URL:?set CONFIG_API_URL (reachable from Dataproc)}"
INPUT="${INPUT:-$BUCKET/data/sample_users.parquet}"
OUTPUT="${OUTPUT:-$BUCKET/output/predictions_campaign_${CAMPAIGN_ID}.parquet}"
RUNTIME_VERSION="${RUNTIME_VERSION:-3.0}"
# The registered model files (registry.json + artifacts) land in the driver's working
# directory; the job loads them from there after the usual sha256 check.
MODELS="${MODELS:-$BUCKET/models}"

here="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Ship the project's packages as one zip; dependencies come from the runtime + the wheel list.
(cd "$here" && zip -qr "$work/spark_ml_pipeline.zip" lib api -x '*/__pycache__/*')
gcloud storage cp "$work/spark_ml_pipeline.zip" "$here/lib/predict.py" "$BUCKET/code/"

gcloud dataproc batches submit pyspark "$BUCKET/code/predict.py" \
  --project "$PROJECT" --region "$REGION" --version "$RUNTIME_VERSION" \
  --py-files "$BUCKET/code/spark_ml_pipeline.zip" \
  --files "$MODELS/registry.json,$MODELS/campaign_model_v1.json,$MODELS/campaign_model_v1.cbm,$MODELS/campaign_model_v1.pkl" \
  --properties "spark.sql.restrictedMode.enabled=true,spark.sql.runSQLOnFiles=false,spark.sql.execution.arrow.pyspark.enabled=true" \
  -- --campaign-id "$CAMPAIGN_ID" --config-api-url "$CONFIG_API_URL" \
     --input "$INPUT" --output "$OUTPUT" --model-dir .
