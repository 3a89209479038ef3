#!/usr/bin/env bash
# Builds the gradwatch image (Dockerfile at the repository root) and checks
# it for real: starts a container with a named data volume, trains a small
# job in it from this machine with the CLI (build/client/gradwatch, built if
# needed, or $GRADWATCH_CLI), reads its series on /metrics, checks health
# (CLI and the image's HEALTHCHECK), that the server runs as a non-root
# user, that SIGTERM stops it cleanly and that a new container on the same
# volume still has the job. Removes what it created.
#
# Uses Docker when a Docker engine answers, else podman (or set
# CONTAINER_ENGINE=docker|podman). With podman and no debian:bookworm /
# debian:bookworm-slim images at hand, makes them with debootstrap.
#
#   scripts/docker-smoke.sh               # image tag: gradwatch:smoke
#   IMAGE=gradwatch:1.2 scripts/docker-smoke.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${IMAGE:-gradwatch:smoke}"
cli="${GRADWATCH_CLI:-$root/build/client/gradwatch}"
started=$SECONDS

say() { echo "docker-smoke: $*"; }
fail() {
  echo "docker-smoke: FAILED: $*" >&2
  exit 1
}

engine="${CONTAINER_ENGINE:-}"
if [[ -z "$engine" ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null; then
    engine=podman
  else
    fail "neither a Docker engine nor podman is available"
  fi
fi
build_args=()
run_args=()
if [[ "$engine" == podman ]]; then
  # chroot isolation builds without nested namespaces; the docker format
  # keeps HEALTHCHECK (OCI images have no such field).
  build_args=(--isolation=chroot --format docker)
  # crun fails on some kernels' cgroup setups; runc works where installed.
  if command -v runc >/dev/null; then run_args=(--runtime runc); fi
  run_args+=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
fi

# podman only: Debian base images made locally when they cannot be pulled:
# debootstrap's minbase for debian:bookworm, and the same without
# documentation, manual pages and translations (dpkg excludes them from later
# installs too), as Debian's official slim image is made, for
# debian:bookworm-slim.
ensure_debian_images() {
  local need=() tag
  for tag in bookworm bookworm-slim; do
    podman image exists "docker.io/library/debian:$tag" || need+=("$tag")
  done
  ((${#need[@]})) || return 0
  say "making debian:${need[*]} with debootstrap"
  command -v debootstrap >/dev/null || fail "debootstrap is not installed"
  local rootfs
  rootfs="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$rootfs" \
    http://deb.debian.org/debian >"$rootfs.log" 2>&1 \
    || { cat "$rootfs.log" >&2; fail "debootstrap failed"; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  for tag in "${need[@]}"; do
    if [[ "$tag" == bookworm-slim ]]; then
      cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF2'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF2
      find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
      rm -rf "$rootfs"/usr/share/{man,groff,info,lintian}/*
      find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
        -exec rm -rf {} +
    fi
    tar -C "$rootfs" -c . | podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "docker.io/library/debian:$tag" >/dev/null
  done
  rm -rf "$rootfs" "$rootfs.log"
}

# The host's CLI: GRADWATCH_CLI, or build/client/gradwatch brought up to
# date (configured first if build/ is new).
if [[ -z "${GRADWATCH_CLI:-}" ]]; then
  if [[ ! -f "$root/build/build.ninja" ]]; then
    bash "$root/scripts/install-deps.sh"
    cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  say "building the CLI ($cli)"
  cmake --build "$root/build" --target gradwatch >/dev/null
fi
[[ -x "$cli" ]] || fail "no CLI at $cli"

[[ "$engine" == podman ]] && ensure_debian_images
say "building $image with $engine"
build_started=$SECONDS
"$engine" build "${build_args[@]}" \
  --build-arg REVISION="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)" \
  -t "$image" "$root" >"${TMPDIR:-/tmp}/gradwatch-docker-build.log" 2>&1 \
  || { tail -n 40 "${TMPDIR:-/tmp}/gradwatch-docker-build.log" >&2; fail "image build failed"; }
build_seconds=$((SECONDS - build_started))
size="$("$engine" image inspect --format '{{.Size}}' "$image")"
say "built $image in ${build_seconds}s: $((size / 1000000)) MB"

name="gradwatch-smoke-$$"
volume="gradwatch-smoke-data-$$"
workdir="$(mktemp -d)"
cleanup() {
  "$engine" rm -f "$name" >/dev/null 2>&1 || true
  "$engine" volume rm -f "$volume" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Publishes both ports on free loopback ports; sets server and metrics.
start_container() {
  "$engine" run -d --name "$name" "${run_args[@]}" \
    -v "$volume:/var/lib/gradwatch" \
    -p 127.0.0.1::50051 -p 127.0.0.1::9464 "$image" >/dev/null \
    2>"$workdir/run.err" || { cat "$workdir/run.err" >&2; fail "cannot start the container"; }
  server="$("$engine" port "$name" 50051/tcp | sed -n 1p)"
  metrics="$("$engine" port "$name" 9464/tcp | sed -n 1p)"
  server="127.0.0.1:${server##*:}"
  metrics="127.0.0.1:${metrics##*:}"
  local _
  for _ in $(seq 1 100); do
    "$cli" --server "$server" --connect-timeout 1 --timeout 2 health \
      >/dev/null 2>&1 && return 0
    [[ "$("$engine" inspect --format '{{.State.Running}}' "$name")" == true ]] \
      || { "$engine" logs "$name" >&2; fail "the container exited"; }
    sleep 0.2
  done
  "$engine" logs "$name" >&2
  fail "the server did not become SERVING within 20 s"
}

start_container
say "container $name: gRPC on $server, metrics on http://$metrics/metrics"

# Not root, and the user and group have names (uid and gid 10001).
ids="$("$engine" exec "$name" id)"
[[ "$ids" == "uid=10001(gradwatch) gid=10001(gradwatch) groups=10001(gradwatch)" ]] \
  || fail "the server runs as $ids"
say "server runs as $ids"

# A small job: 2-16-3 ReLU on spirals, 200 steps.
cat >"$workdir/spec.json" <<'JSON'
{
  "name": "docker-smoke",
  "data": {"synthetic": {"kind": "SPIRALS", "samples": 300, "classes": 3, "seed": 1}},
  "model": {"layers": [{"name": "hidden", "units": 16, "activation": "RELU"},
                       {"name": "output", "units": 3}]},
  "loss": "CROSS_ENTROPY",
  "optimizer": {"kind": "SGD", "learning_rate": 0.1},
  "training": {"steps": 200, "batch_size": 32, "seed": 1}
}
JSON
# The job takes well under a second: a stream still open after 2 minutes is
# a failure, not a slow machine.
timeout 120 "$cli" --server "$server" --output jsonl train "$workdir/spec.json" \
  >"$workdir/events.jsonl" || fail "train failed or its stream did not end (exit $?)"
job="$(sed -n '1s/.*"job_id":"\([^"]*\)".*/\1/p' "$workdir/events.jsonl")"
[[ -n "$job" ]] || fail "the event stream names no job"
state=""
[[ "$("$cli" --server "$server" get "$job")" =~ \"state\":\ *\"([A-Z_]+)\" ]] \
  && state="${BASH_REMATCH[1]}"
say "job $job: $state, $(wc -l <"$workdir/events.jsonl") events"
[[ "$state" == *SUCCEEDED* ]] || fail "job $job is not SUCCEEDED"

python3 - "$metrics" "$job" <<'PY' || fail "/metrics lacks the job's series"
import sys, urllib.request
metrics, job = sys.argv[1], sys.argv[2]
text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
want = [f'gradwatch_dead_neuron_ratio{{job_id="{job}",layer="0"}}',
        'gradwatch_jobs_finished_total{outcome="succeeded"} 1']
lines = text.splitlines()
for w in want:
    if not any(line.startswith(w) for line in lines):
        sys.exit(f"missing: {w}")
print(f"docker-smoke: /metrics has the job's series ({len(lines)} lines)")
PY

[[ "$("$cli" --server "$server" --output text health)" == *SERVING* ]] \
  || fail "health is not SERVING"
if [[ "$engine" == podman ]]; then
  podman healthcheck run "$name" || fail "the image's HEALTHCHECK fails"
else
  docker exec "$name" gradwatch health --server 127.0.0.1:50051 >/dev/null \
    || fail "the image's HEALTHCHECK command fails"
fi
say "health: SERVING (CLI and HEALTHCHECK)"

# SIGTERM: a clean exit; the job store on the volume survives a new
# container.
"$engine" stop -t 40 "$name" >/dev/null 2>&1
code="$("$engine" inspect --format '{{.State.ExitCode}}' "$name")"
[[ "$code" == 0 ]] || fail "the server exited with $code on SIGTERM"
"$engine" rm "$name" >/dev/null 2>&1
start_container
[[ "$("$cli" --server "$server" get "$job")" == *SUCCEEDED* ]] \
  || fail "job $job did not survive a restart on the same volume"
say "restart on the same volume keeps job $job"
"$engine" stop -t 40 "$name" >/dev/null 2>&1

say "PASSED in $((SECONDS - started))s (image build ${build_seconds}s, $((size / 1000000)) MB)"
