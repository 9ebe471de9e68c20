#!/usr/bin/env bash
# Build the REST image (the Dockerfile's rest target), push it (default registry gcr.io/$PROJECT),
# create or update the rest Deployment and its external endpoint (LoadBalancer Service, or
# Ingress with --endpoint ingress), and print the external IP once the cluster assigns one.
#
#   PROJECT=my-project ./rest-launch.sh            # or: ./rest-launch.sh --project my-project
#   ./rest-launch.sh --registry registry.example.com/team --tag v1 --dry-run
#
# The rest of the stack (Redis, RabbitMQ, worker, logs) is deployed by ./deploy-all.sh k8s;
# both share scripts/deploy-k8s.sh, so their options are the same (see --help).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY_K8S_PROG=rest-launch.sh exec "$here/scripts/deploy-k8s.sh" --only rest "$@"
