#!/usr/bin/env bash
# Build, push and deploy the imagescan stack (rest, worker, logs, Redis, RabbitMQ) to
# Kubernetes. Called as `./deploy-all.sh k8s [options]`; rest-launch.sh calls it with
# `--only rest`. Run with --help for the options.
set -euo pipefail
trap 'echo "${PROG:-deploy-k8s.sh}: error: unexpected failure at line $LINENO" >&2' ERR

PROG=${DEPLOY_K8S_PROG:-deploy-k8s.sh}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES=(rest worker logs)
REQUIRED_SECRETS=(API_KEY REDIS_PASSWORD RABBITMQ_USER RABBITMQ_PASSWORD RABBITMQ_ADMIN_USER
    RABBITMQ_ADMIN_PASSWORD RABBITMQ_ERLANG_COOKIE RABBITMQ_KEDA_USER RABBITMQ_KEDA_PASSWORD
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY)
LABEL_SELECTOR=app.kubernetes.io/part-of=imagescan
# What a deploy owns and prunes when no longer rendered (never volumes or the namespace).
PRUNED_KINDS=deployments,statefulsets,services,configmaps,secrets,ingresses,horizontalpodautoscalers,networkpolicies,poddisruptionbudgets,serviceaccounts,roles,rolebindings
PRUNED_CUSTOM_KINDS=(scaledobjects.keda.sh triggerauthentications.keda.sh servicemonitors.monitoring.coreos.com
    podmonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com)

usage() {
    cat <<EOF
Usage: $PROG [options]

$(if [[ ${ONLY:-} == rest ]]; then
    echo "Build and push the REST image, then create or update the rest Deployment, its"
    echo "Services and the external endpoint (LoadBalancer or Ingress); print the external IP."
    echo "Redis, RabbitMQ, worker and logs are deployed by ./deploy-all.sh k8s."
else
    echo "Build and push the rest, worker and logs images, deploy the whole stack with"
    echo "kubectl apply, wait for the rollouts and print the external endpoint."
fi)

Options (environment variable in brackets):
  --registry REG      image registry [IMAGESCAN_REGISTRY]; default gcr.io/PROJECT
  --project ID        cloud project of the default registry [PROJECT, GOOGLE_CLOUD_PROJECT]
  --tag TAG           image tag [IMAGESCAN_TAG]; default: the git commit. Pods run the
                        pushed images by digest
  --allow-dirty       deploy from a git tree with uncommitted changes (refused otherwise)
  --namespace NS      Kubernetes namespace [IMAGESCAN_NAMESPACE]; default imagescan
  --context CTX       kubectl context [KUBE_CONTEXT]; default: kubectl's current context
  --overlay NAME      base | development | production [IMAGESCAN_OVERLAY]; default base
                        production: three-node RabbitMQ, Redis with Sentinels (k8s/overlays)
  --endpoint KIND     loadbalancer | ingress [IMAGESCAN_ENDPOINT]; default loadbalancer,
                        ingress (HTTPS) with --overlay production
  --ingress-host NAME DNS name of the Ingress and its certificate [IMAGESCAN_INGRESS_HOST]
  --ingress-class C   ingressClassName [IMAGESCAN_INGRESS_CLASS]; default nginx
  --storage-class SC  StorageClass of the Redis/RabbitMQ volumes [IMAGESCAN_STORAGE_CLASS];
                        default: the overlay's (production: standard-rwo), else the cluster's
  --reset-scale       set rest/worker replicas to the manifests' count (default: keep the
                        count in the cluster, e.g. after kubectl scale)
  --autoscale MODE    none | cpu | keda [IMAGESCAN_AUTOSCALE]; default none
                        cpu:  HPA on CPU for rest and worker (needs metrics-server)
                        keda: HPA on CPU for rest, KEDA on queue depth for worker
  --monitoring        add ServiceMonitor/PodMonitor, alerts and the Grafana dashboard
                        (needs the Prometheus Operator's CRDs) [IMAGESCAN_MONITORING=1]
  --secrets-env FILE  KEY=VALUE file with the real secrets [IMAGESCAN_SECRETS_ENV];
                        default k8s/secrets.env (git-ignored; see k8s/secrets.env.example)
  --platform P        build for this platform, e.g. linux/amd64 [IMAGESCAN_PLATFORM]
  --skip-build        deploy images already pushed under --tag
  --timeout DUR       how long to wait for each rollout [IMAGESCAN_TIMEOUT]; default 10m
  --endpoint-wait S   seconds to wait for the external address [IMAGESCAN_ENDPOINT_WAIT];
                        default 300. The previous endpoint is removed only once the new one
                        has an address; without one the deploy fails
  --render            print the rendered manifests (secret values redacted) and exit
  --dry-run           print the commands and the rendered manifests, run nothing
  -h, --help          this help

Objects of an earlier deploy (label $LABEL_SELECTOR) that this one does not render
are deleted (pruned) after the rollout; volumes are kept.

Tools: kubectl (kustomize built in); docker, or podman [CONTAINER_TOOL] to build; awk, sort.
EOF
}

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

note() {
    echo "$PROG: $*" >&2
}

# ---- options ------------------------------------------------------------------------------

parse_args() {
    REGISTRY=${IMAGESCAN_REGISTRY:-}
    PROJECT_ID=${PROJECT:-${GOOGLE_CLOUD_PROJECT:-}}
    TAG=${IMAGESCAN_TAG:-}
    NAMESPACE=${IMAGESCAN_NAMESPACE:-imagescan}
    CONTEXT=${KUBE_CONTEXT:-}
    OVERLAY=${IMAGESCAN_OVERLAY:-base}
    ENDPOINT=${IMAGESCAN_ENDPOINT:-}
    INGRESS_HOST=${IMAGESCAN_INGRESS_HOST:-}
    INGRESS_CLASS=${IMAGESCAN_INGRESS_CLASS:-nginx}
    STORAGE_CLASS=${IMAGESCAN_STORAGE_CLASS:-}
    ALLOW_DIRTY=0
    RESET_SCALE=0
    AUTOSCALE=${IMAGESCAN_AUTOSCALE:-none}
    MONITORING=${IMAGESCAN_MONITORING:-0}
    SECRETS_ENV=${IMAGESCAN_SECRETS_ENV:-$REPO_ROOT/k8s/secrets.env}
    PLATFORM=${IMAGESCAN_PLATFORM:-}
    TIMEOUT=${IMAGESCAN_TIMEOUT:-10m}
    ENDPOINT_WAIT=${IMAGESCAN_ENDPOINT_WAIT:-300}
    ONLY=
    SKIP_BUILD=0
    MODE=deploy
    while (($#)); do
        case $1 in
            -h | --help) usage; exit 0 ;;
            --registry) REGISTRY=$(value_of "$@"); shift ;;
            --project) PROJECT_ID=$(value_of "$@"); shift ;;
            --tag) TAG=$(value_of "$@"); shift ;;
            --namespace) NAMESPACE=$(value_of "$@"); shift ;;
            --context) CONTEXT=$(value_of "$@"); shift ;;
            --endpoint) ENDPOINT=$(value_of "$@"); shift ;;
            --overlay) OVERLAY=$(value_of "$@"); shift ;;
            --ingress-host) INGRESS_HOST=$(value_of "$@"); shift ;;
            --ingress-class) INGRESS_CLASS=$(value_of "$@"); shift ;;
            --storage-class) STORAGE_CLASS=$(value_of "$@"); shift ;;
            --allow-dirty) ALLOW_DIRTY=1 ;;
            --reset-scale) RESET_SCALE=1 ;;
            --autoscale) AUTOSCALE=$(value_of "$@"); shift ;;
            --secrets-env) SECRETS_ENV=$(value_of "$@"); shift ;;
            --platform) PLATFORM=$(value_of "$@"); shift ;;
            --timeout) TIMEOUT=$(value_of "$@"); shift ;;
            --endpoint-wait) ENDPOINT_WAIT=$(value_of "$@"); shift ;;
            --only) ONLY=$(value_of "$@"); shift ;;
            --skip-build) SKIP_BUILD=1 ;;
            --monitoring) MONITORING=1 ;;
            --render) MODE=render ;;
            --dry-run) MODE=dry-run ;;
            *) die "unknown option '$1' (see --help)" ;;
        esac
        shift
    done
    case $OVERLAY in base | development | production) ;; *) die "--overlay must be base, development or production, not '$OVERLAY'" ;; esac
    if [[ -z $ENDPOINT ]]; then
        if [[ $OVERLAY == production ]]; then ENDPOINT=ingress; else ENDPOINT=loadbalancer; fi
    fi
    case $ENDPOINT in loadbalancer | ingress) ;; *) die "--endpoint must be loadbalancer or ingress, not '$ENDPOINT'" ;; esac
    case $AUTOSCALE in none | cpu | keda) ;; *) die "--autoscale must be none, cpu or keda, not '$AUTOSCALE'" ;; esac
    case $ONLY in '' | rest) ;; *) die "--only accepts only 'rest', not '$ONLY'" ;; esac
    [[ $ENDPOINT_WAIT =~ ^[0-9]+$ ]] || die "--endpoint-wait must be a number of seconds, not '$ENDPOINT_WAIT'"
    [[ $NAMESPACE =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "--namespace '$NAMESPACE' is not a valid namespace name"
    if [[ $ONLY == rest ]]; then SERVICES=(rest); fi
    if [[ -n $TAG && ! $TAG =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
        die "--tag '$TAG' is not a valid image tag"
    fi
    return 0
}

value_of() { # value_of OPTION VALUE...: the value following an option, or die
    [[ $# -ge 2 && -n $2 && $2 != --* ]] || die "option $1 needs a value"
    printf '%s' "$2"
}

# shellcheck source=scripts/deploy-k8s-setup.sh
source "$REPO_ROOT/scripts/deploy-k8s-setup.sh"

# shellcheck source=scripts/deploy-k8s-render.sh
source "$REPO_ROOT/scripts/deploy-k8s-render.sh"

# ---- running ------------------------------------------------------------------------------

run() { # print (dry-run) or run a command
    if [[ $MODE == dry-run ]]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

kube() {
    if [[ $CONTEXT == CURRENT-CONTEXT ]]; then
        run "$KUBECTL" --namespace "$NAMESPACE" "$@"
    else
        run "$KUBECTL" --context "$CONTEXT" --namespace "$NAMESPACE" "$@"
    fi
}

build_and_push() {
    local service ref platform_args=()
    [[ -n $PLATFORM ]] && platform_args=(--platform "$PLATFORM")
    for service in "${SERVICES[@]}"; do
        ref=$(image_ref "$service")
        note "building $ref"
        run "$CONTAINER_TOOL" build "${platform_args[@]}" -f "$REPO_ROOT/Dockerfile" --target "$service" -t "$ref" "$REPO_ROOT" ||
            die "building $ref failed"
        note "pushing $ref"
        run "$CONTAINER_TOOL" push "$ref" ||
            die "pushing $ref failed (for gcr.io run 'gcloud auth configure-docker' first)"
    done
}

exists() { # exists KUBECTL-GET-ARGS...: whether the cluster has these objects (true in dry-run)
    if [[ $MODE == dry-run ]]; then
        kube get "$@"
    else
        kube get "$@" >/dev/null 2>&1
    fi
}

check_cluster_prerequisites() {
    if [[ $AUTOSCALE == keda ]]; then
        exists crd scaledobjects.keda.sh ||
            die "KEDA is not installed in the cluster (no CRD scaledobjects.keda.sh): install KEDA or use --autoscale cpu"
    fi
    if [[ $MONITORING == 1 ]]; then
        exists crd servicemonitors.monitoring.coreos.com ||
            die "the Prometheus Operator is not installed (no CRD servicemonitors.monitoring.coreos.com): install it or drop --monitoring"
    fi
    if [[ $ONLY == rest ]] && ! exists statefulset redis rabbitmq; then
        note "warning: Redis/RabbitMQ not found in namespace $NAMESPACE; rest stays unready until './deploy-all.sh k8s' deploys them"
    fi
}

# Server-side apply: no last-applied annotation (which would hold the Secret's values), and
# this script owns every field it sets, even one changed by hand since (--force-conflicts).
apply_manifests() { # apply_manifests FILE
    local apply=(apply --server-side --force-conflicts --field-manager imagescan-deploy -f "$1")
    if [[ $ONLY == rest ]]; then
        # The REST tier and what it references: namespace, settings, secrets.
        kube "${apply[@]}" -l 'imagescan.io/shared=true'
        kube "${apply[@]}" -l 'app.kubernetes.io/name=rest'
    else
        kube "${apply[@]}"
    fi
}

# Delete what an earlier deploy created and this one does not render (another endpoint,
# autoscaler or component, an old generated ConfigMap): objects carrying the stack's label
# only, never volumes. With --only rest, only objects of the rest tier.
prune_stale() {
    local rendered live object kinds=$PRUNED_KINDS selector=$LABEL_SELECTOR custom
    [[ $ONLY == rest ]] && selector+=,app.kubernetes.io/name=rest
    for custom in "${PRUNED_CUSTOM_KINDS[@]}"; do
        if [[ $MODE == deploy ]] && exists crd "$custom"; then kinds+=,$custom; fi
    done
    rendered=$(awk '/^---$/ { kind = "" } /^kind: / { kind = $2 }
                    /^  name: / && kind != "" { print kind "/" $2; kind = "" }' "$1")
    if [[ $MODE == dry-run ]]; then
        kube get "$kinds" -l "$selector" -o name
        return
    fi
    live=$(kube get "$kinds" -l "$selector" \
        -o 'jsonpath={range .items[*]}{.kind}/{.metadata.name}{"\n"}{end}') || die "listing the deployed objects failed"
    while read -r object; do
        [[ -z $object ]] && continue
        grep -qxF "$object" <<<"$rendered" && continue
        note "pruning $object (not part of this deploy)"
        kube delete "$object" --ignore-not-found || die "deleting $object failed"
    done <<<"$live"
}

sync_rabbitmq_users() {
    [[ $ONLY == rest ]] && return 0
    local args=(--namespace "$NAMESPACE" --context "$CONTEXT" --secrets-env "$SECRETS_ENV")
    [[ $MODE == dry-run ]] && args+=(--dry-run)
    KUBECTL=$KUBECTL "$REPO_ROOT/scripts/rabbitmq-users.sh" "${args[@]}" || die "setting the RabbitMQ users failed"
}

wait_for_rollouts() {
    local workload
    if [[ $ONLY == rest ]]; then
        set -- deployment/rest
    else
        set -- statefulset/redis statefulset/rabbitmq deployment/rest deployment/worker deployment/logs
        [[ $OVERLAY == production ]] && set -- "$@" statefulset/redis-sentinel
    fi
    for workload in "$@"; do
        kube rollout status "$workload" --timeout "$TIMEOUT" || die "$workload did not become ready within $TIMEOUT (see: kubectl -n $NAMESPACE describe $workload)"
    done
}

# Waits for the new endpoint's address; the deploy fails (and the previous endpoint stays,
# as prune_stale has not run) when none arrives within --endpoint-wait.
wait_for_endpoint() {
    local resource address waited=0
    if [[ $ENDPOINT == ingress ]]; then resource=ingress/rest; else resource=service/rest-public; fi
    local jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}'
    if [[ $MODE == dry-run ]]; then
        kube get "$resource" -o "jsonpath=$jsonpath"
        return
    fi
    while :; do
        address=$(kube get "$resource" -o "jsonpath=$jsonpath" 2>/dev/null || true)
        [[ -n $address || $waited -ge $ENDPOINT_WAIT ]] && break
        sleep 5
        waited=$((waited + 5))
    done
    [[ -n $address ]] || die "$resource got no external address within ${ENDPOINT_WAIT}s; the previous endpoint (if any) was kept. Watch it with: kubectl --namespace $NAMESPACE get $resource --watch, then deploy again"
    if [[ $ENDPOINT == ingress ]]; then
        echo "External endpoint: https://${INGRESS_HOST:-$address}/ (address $address)"
    else
        echo "External endpoint: http://$address/"
        echo "                   http://$address:5000/"
    fi
}

main() {
    parse_args "$@"
    find_kubectl
    [[ $MODE == render ]] || find_container_tool
    resolve_registry
    check_clean_tree
    resolve_tag
    [[ $MODE == render ]] || resolve_context
    if [[ $MODE == deploy && $ENDPOINT == ingress && -z $INGRESS_HOST ]]; then
        die "--endpoint ingress needs --ingress-host NAME: the DNS name its TLS certificate is for"
    fi

    # Private scratch space: it holds the real secrets during a deploy.
    WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/imagescan-deploy.XXXXXX")
    trap 'rm -rf "$WORKDIR"' EXIT
    chmod 700 "$WORKDIR"
    local manifests=$WORKDIR/manifests.yaml

    write_secrets_env "$WORKDIR/secrets.env" # fails on a missing or placeholder secret, before building
    if [[ $MODE == render ]]; then
        render_manifests "$WORKDIR" "$manifests"
        cat "$manifests"
        return
    fi
    note "deploying ${SERVICES[*]} as $REGISTRY/imagescan-*:$TAG to namespace $NAMESPACE" \
        "(context ${CONTEXT/#CURRENT-CONTEXT/kubectl\'s current one})"
    check_cluster_prerequisites
    ((SKIP_BUILD)) || build_and_push
    resolve_digests
    render_manifests "$WORKDIR" "$manifests"
    if [[ $MODE == dry-run ]]; then
        echo "# ---- rendered manifests (secret values redacted) ----"
        cat "$manifests"
        echo "# ---- end of rendered manifests ----"
    fi
    # A changed broker password is set on the broker before the pods that use it restart.
    if [[ $ONLY != rest ]] && exists statefulset rabbitmq; then sync_rabbitmq_users; fi
    apply_manifests "$manifests"
    wait_for_rollouts
    sync_rabbitmq_users
    wait_for_endpoint
    prune_stale "$manifests"
}

main "$@"
