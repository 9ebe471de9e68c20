#!/usr/bin/env bash
# Deploy the whole imagescan stack.
#   ./deploy-all.sh local [up [--with-prometheus]|down|status]   everything on this machine, as processes
#   ./deploy-all.sh k8s [--dry-run] [...]    build, push and deploy to Kubernetes (--help for flags)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

usage() {
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
}

target="${1:-}"
[ $# -gt 0 ] && shift
case "$target" in
  local) exec "$here/scripts/deploy-local.sh" "$@" ;;
  k8s) exec "$here/scripts/deploy-k8s.sh" "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
