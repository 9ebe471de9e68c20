#!/usr/bin/env bash
# Creates or updates the RabbitMQ users of the stack from the secrets file, on the running
# broker (kubectl exec into rabbitmq-0; rabbitmqctl acts on the whole cluster):
#   RABBITMQ_ADMIN_USER  administrator (tag administrator, every permission)
#   RABBITMQ_USER        the services: only the stack's exchanges and queues
#   RABBITMQ_KEDA_USER   the KEDA scaler: reads the work queues' depth, nothing else
# Passwords travel on stdin, never on a command line. Run by scripts/deploy-k8s.sh; to rotate
# a password by hand see k8s/README.md, "Rotating the RabbitMQ passwords".
set -euo pipefail

PROG=rabbitmq-users.sh
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The stack's exchanges and queues (imagescan/topology.py), and server-named queues (logs).
SERVICE_RESOURCES='^(toWorker|toWorker\..*|logs|imagescan\..*|amq\.gen-.*)$'
WORK_QUEUES='^imagescan\..*$'

usage() {
    cat <<USAGE
Usage: $PROG [--namespace NS] [--context CTX] [--secrets-env FILE] [--dry-run]

Set the passwords, tags and permissions of the broker users from FILE (default
k8s/secrets.env) on the RabbitMQ of namespace NS (default imagescan).
USAGE
}

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

env_value() { # env_value FILE KEY
    local line
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line == "$2="* ]] && { printf '%s' "${line#*=}"; return; }
    done <"$1"
    return 0
}

NAMESPACE=${IMAGESCAN_NAMESPACE:-imagescan}
CONTEXT=${KUBE_CONTEXT:-}
SECRETS_ENV=${IMAGESCAN_SECRETS_ENV:-$REPO_ROOT/k8s/secrets.env}
DRY_RUN=0
while (($#)); do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --namespace) NAMESPACE=${2:?--namespace needs a value}; shift ;;
        --context) CONTEXT=${2:?--context needs a value}; shift ;;
        --secrets-env) SECRETS_ENV=${2:?--secrets-env needs a value}; shift ;;
        --dry-run) DRY_RUN=1 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[[ -f $SECRETS_ENV ]] || die "secrets file $SECRETS_ENV not found"
KUBECTL=${KUBECTL:-kubectl}
context_args=()
[[ -n $CONTEXT && $CONTEXT != CURRENT-CONTEXT ]] && context_args=(--context "$CONTEXT")

# rabbitmqctl inside the broker pod; the script's stdin feeds the `read` of a password.
ctl() { # ctl STDIN SHELL-COMMAND ARGS...
    local input=$1
    shift
    if ((DRY_RUN)); then
        printf '+ %s exec rabbitmq-0 -- %s\n' "$KUBECTL" "$*"
        return
    fi
    printf '%s\n' "$input" | "$KUBECTL" "${context_args[@]}" --namespace "$NAMESPACE" \
        exec -i rabbitmq-0 -c rabbitmq -- sh -c "$@" >/dev/null ||
        die "rabbitmqctl failed in rabbitmq-0 (namespace $NAMESPACE): $*"
}

# The single-quoted commands run in the pod's shell, with the arguments after `sh`.
# shellcheck disable=SC2016
ensure_user() { # ensure_user USER PASSWORD TAGS CONFIGURE WRITE READ
    local user=$1 password=$2
    [[ -n $user && -n $password ]] || die "$SECRETS_ENV: a RabbitMQ user or password is empty"
    ctl "$password" 'read -r p; rabbitmqctl -q add_user "$1" "$p" 2>/dev/null ||
        rabbitmqctl -q change_password "$1" "$p"' sh "$user"
    ctl "" 'rabbitmqctl -q set_user_tags "$1" $2' sh "$user" "$3"
    ctl "" 'rabbitmqctl -q set_permissions -p "$1" "$2" "$3" "$4" "$5"' sh "$VHOST" "$user" "$4" "$5" "$6"
}

VHOST=$(env_value "$REPO_ROOT/k8s/base/settings.env" RABBITMQ_VHOST)
VHOST=${VHOST:-/}
ensure_user "$(env_value "$SECRETS_ENV" RABBITMQ_ADMIN_USER)" "$(env_value "$SECRETS_ENV" RABBITMQ_ADMIN_PASSWORD)" \
    administrator '.*' '.*' '.*'
ensure_user "$(env_value "$SECRETS_ENV" RABBITMQ_USER)" "$(env_value "$SECRETS_ENV" RABBITMQ_PASSWORD)" \
    '' "$SERVICE_RESOURCES" "$SERVICE_RESOURCES" "$SERVICE_RESOURCES"
ensure_user "$(env_value "$SECRETS_ENV" RABBITMQ_KEDA_USER)" "$(env_value "$SECRETS_ENV" RABBITMQ_KEDA_PASSWORD)" \
    '' '^$' '^$' "$WORK_QUEUES"
echo "$PROG: RabbitMQ users of namespace $NAMESPACE are up to date" >&2
