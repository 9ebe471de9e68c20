# shellcheck shell=bash disable=SC2153  # the settings come from deploy-k8s.sh
# Rendering for scripts/deploy-k8s.sh (sourced by it): the images' digests, and a throw-away
# kustomize overlay over a copy of k8s/ with the namespace, components, images by digest,
# the real secrets, and one secrets checksum per workload.

# The components the overlay adds to the base, from the options.
components() {
    [[ $ENDPOINT == ingress ]] && echo ingress
    case $AUTOSCALE in
        cpu) echo rest-hpa; echo worker-hpa ;;
        keda) echo rest-hpa; echo worker-keda ;;
    esac
    [[ $MONITORING == 1 ]] && echo monitoring
    return 0
}

# The pods run every image by digest: a tag can be moved, a digest cannot. Ours come from
# the push; Redis and RabbitMQ (by tag in k8s/) are pulled once to learn theirs.
declare -A DIGESTS=()
resolve_digests() {
    local service image
    [[ $MODE == deploy ]] || return 0
    for service in "${SERVICES[@]}"; do
        DIGESTS[imagescan-$service]=$(registry_digest "$(image_ref "$service")" "$REGISTRY/imagescan-$service@" $((SKIP_BUILD)))
    done
    [[ $ONLY == rest ]] && return 0
    while read -r image; do
        DIGESTS[${image%:*}]=$(registry_digest "$image" "" 1)
    done < <(third_party_images)
}

registry_digest() { # registry_digest REF REPO-DIGEST-PREFIX PULL-FIRST
    local digest
    if (($3)); then
        "$CONTAINER_TOOL" pull -q "$1" >/dev/null || die "pulling $1 failed (was it pushed?)"
    fi
    digest=$("$CONTAINER_TOOL" inspect --format '{{join .RepoDigests "\n"}}' "$1" | grep -F "$2" | head -n 1 || true)
    digest=${digest##*@}
    [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "no registry digest for $1 (was it pushed?)"
    printf '%s' "$digest"
}

third_party_images() { # the images k8s/ names by tag, other than ours
    awk '$1 == "image:" && $2 !~ /^imagescan-/ { print $2 }' "$REPO_ROOT"/k8s/base/*.yaml \
        "$REPO_ROOT"/k8s/components/*/*.yaml | sort -u
}

# render_manifests WORKDIR OUTPUT
render_manifests() {
    local overlay=$1/k8s/deploy output=$2
    cp -R "$REPO_ROOT/k8s" "$1/k8s"
    rm -rf "$overlay" && mkdir -p "$overlay"
    write_secrets_env "$overlay/secrets.env"
    write_kustomization >"$overlay/kustomization.yaml"
    "$KUBECTL" kustomize "$overlay" >"$output" || die "kubectl kustomize failed on the generated overlay"
    # Second pass: a pod restarts when a secret value it reads changes, and only then (the
    # Secret keeps a fixed name, so nothing else would roll the pods).
    secret_checksum_patches "$output" "$overlay/secrets.env" >>"$overlay/kustomization.yaml"
    "$KUBECTL" kustomize "$overlay" >"$output" || die "kubectl kustomize failed on the generated overlay"
}

write_kustomization() {
    local service component image
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "namespace: $NAMESPACE"
    # The label a later deploy prunes by, also on what the components add.
    echo "labels:"
    echo "  - pairs:"
    echo "      ${LABEL_SELECTOR%%=*}: ${LABEL_SELECTOR#*=}"
    echo "    includeSelectors: false"
    echo "resources:"
    if [[ $OVERLAY == base ]]; then echo "  - ../base"; else echo "  - ../overlays/$OVERLAY"; fi
    echo "components:"
    while read -r component; do echo "  - ../components/$component"; done < <(components)
    echo "images:"
    for service in rest worker logs; do
        echo "  - name: imagescan-$service"
        echo "    newName: $REGISTRY/imagescan-$service"
        if [[ -n ${DIGESTS[imagescan-$service]:-} ]]; then
            echo "    digest: ${DIGESTS[imagescan-$service]}"
        else
            echo "    newTag: \"$TAG\""
        fi
    done
    for image in "${!DIGESTS[@]}"; do
        [[ $image == imagescan-* ]] && continue
        echo "  - name: $image"
        echo "    digest: ${DIGESTS[$image]}"
    done
    echo "secretGenerator:"
    echo "  - name: imagescan-secrets"
    echo "    behavior: merge"
    echo "    envs:"
    echo "      - secrets.env"
    kept_replicas
    echo "patches:"
    ingress_patch
    storage_class_patch
}

# A deploy keeps the replica count a person set with `kubectl scale` (autoscaled workloads
# have none in the manifests) unless --reset-scale.
kept_replicas() {
    local name count
    ((RESET_SCALE)) || [[ $MODE != deploy ]] && return 0
    [[ $AUTOSCALE == none ]] || return 0
    echo "replicas:"
    for name in "${SERVICES[@]}"; do
        [[ $name == logs ]] && continue
        count=$(kube get deployment "$name" -o 'jsonpath={.spec.replicas}' 2>/dev/null || true)
        [[ $count =~ ^[0-9]+$ ]] || continue
        echo "  - name: $name"
        echo "    count: $count"
    done
}

ingress_patch() {
    [[ $ENDPOINT == ingress ]] || return 0
    echo "  - target:"
    echo "      kind: Ingress"
    echo "      name: rest"
    echo "    patch: |-"
    echo "      - op: replace"
    echo "        path: /spec/ingressClassName"
    echo "        value: $INGRESS_CLASS"
    [[ -n $INGRESS_HOST ]] || return 0
    echo "      - op: replace"
    echo "        path: /spec/tls/0/hosts/0"
    echo "        value: $INGRESS_HOST"
    echo "      - op: replace"
    echo "        path: /spec/rules/0/host"
    echo "        value: $INGRESS_HOST"
}

storage_class_patch() {
    [[ -n $STORAGE_CLASS ]] || return 0
    echo "  - target:"
    echo "      kind: StatefulSet"
    echo "      name: (redis|rabbitmq)"
    echo "    patch: |-"
    echo "      - op: add"
    echo "        path: /spec/volumeClaimTemplates/0/spec/storageClassName"
    echo "        value: $STORAGE_CLASS"
}

# secret_keys_read RENDERED SECRETS_ENV: "KIND NAME KEY" for each secret key a workload reads
# (env secretKeyRef or a secret volume item), sorted.
secret_keys_read() {
    local known
    known=$(cut -d= -f1 "$2" | tr '\n' ' ')
    awk -v known="$known" '
        BEGIN { n = split(known, list, " "); for (i = 1; i <= n; i++) secret[list[i]] = 1 }
        /^---$/ { kind = ""; name = ""; inmeta = 0; next }
        /^kind: / { kind = $2 }
        /^metadata:$/ { inmeta = 1; next }
        /^[^ ]/ { inmeta = 0 }
        inmeta && /^  name: / { name = $2; inmeta = 0 }
        /^ *(- )?key: / && (kind == "Deployment" || kind == "StatefulSet") && ($NF in secret) {
            print kind, name, $NF
        }' "$1" | sort -u
}

secret_checksum_patches() { # secret_checksum_patches RENDERED SECRETS_ENV
    local kind name key workload='' values='' checksum
    emit() {
        [[ -n $workload ]] || return 0
        checksum=$(printf '%s' "$values" | sha256sum | cut -c1-16)
        echo "  - patch: |-"
        echo "      apiVersion: apps/v1"
        echo "      kind: ${workload% *}"
        echo "      metadata:"
        echo "        name: ${workload#* }"
        echo "      spec:"
        echo "        template:"
        echo "          metadata:"
        echo "            annotations:"
        echo "              imagescan.io/secrets-checksum: \"$checksum\""
    }
    while read -r kind name key; do
        if [[ "$kind $name" != "$workload" ]]; then
            emit
            workload="$kind $name" values=''
        fi
        values+="$key=$(env_value "$2" "$key")"$'\n'
    done < <(secret_keys_read "$1" "$2")
    emit
}
