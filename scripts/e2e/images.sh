#!/usr/bin/env bash
# Build the images of the end-to-end run with podman, reusing the build cache:
#   images.sh TIMINGS_FILE
# - a Debian bookworm base (debootstrap minbase + python3, python3-venv, ca-certificates, and
#   python-is-python3 because the Dockerfile calls `python`, as the python:slim images allow),
#   imported once and kept untagged in the build cache (no registry needed);
# - imagescan-rest, imagescan-worker, imagescan-logs: the targets of the one Dockerfile, built
#   on that base with --build-arg BASE_IMAGE (the only change from a registry build); the
#   three share its builder stage, so it is built once;
# - a stand-in for the Redis and RabbitMQ images (infra.Containerfile).
# Each image is tagged localhost/<name>:$E2E_TAG; TIMINGS_FILE gets "name seconds" lines.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
timings="$1"
tag="${E2E_TAG:-e2e}"
cache="${E2E_CACHE:-$repo/build/e2e}"
suite="${E2E_SUITE:-bookworm}"
mirror="${E2E_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$cache"
: >"$timings"

now() { date +%s.%N; }
record() { awk -v n="$1" -v s="$2" -v e="$(now)" 'BEGIN { printf "%s %.1f\n", n, e - s }' >>"$timings"; }

# The base image: reused while its id (kept in the cache directory) still exists.
base_image() {
  local id_file="$cache/base-$suite.id" rootfs
  if [ -s "$id_file" ] && podman image exists "$(cat "$id_file")"; then
    cat "$id_file"
    return
  fi
  local start; start="$(now)"
  rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
  echo "e2e: debootstrap $suite into $rootfs" >&2
  nice debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; rm -rf "$rootfs"; exit 1; }
  # What no service needs at run time: package caches and lists, documentation, man pages,
  # locales (the images run with the C.UTF-8 locale that libc carries).
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - >"$id_file"
  rm -rf "$rootfs"
  record base "$start"
  cat "$id_file"
}

build() {  # build NAME DOCKERFILE [TARGET]
  local name="$1" file="$2" target=() start; start="$(now)"
  [ -n "${3:-}" ] && target=(--target "$3")
  echo "e2e: building $name" >&2
  # pip inside the build verifies TLS with this machine's CA bundle (which may hold a proxy's
  # CA): it is mounted over the base's bundle, which Debian's pip uses.
  nice podman build --layers \
    --build-arg "BASE_IMAGE=$base" \
    --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --file "$file" "${target[@]}" --tag "localhost/$name:$tag" "$repo" >"$cache/build-$name.log" 2>&1 \
    || { tail -30 "$cache/build-$name.log" >&2; exit 1; }
  record "$name" "$start"
}

base="$(base_image)"
build imagescan-rest "$repo/Dockerfile" rest
build imagescan-logs "$repo/Dockerfile" logs
build imagescan-worker "$repo/Dockerfile" worker
build imagescan-e2e-infra "$here/infra.Containerfile"
