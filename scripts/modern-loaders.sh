#!/usr/bin/env bash
# Today's image loaders, from Debian sid, in a chroot on this machine:
# docker 28.5 (dockerd with the containerd image store), containerd 2.1
# (`ctr`), crane 0.20, skopeo 1.22, umoci 0.6 and a static busybox.
#
#   scripts/modern-loaders.sh start    build the chroot if needed, mount, start
#                                      containerd + dockerd (idempotent); they
#                                      run until `stop`
#   scripts/modern-loaders.sh stop     stop both daemons by PID, unmount
#   scripts/modern-loaders.sh status   exit 0 when both daemons answer
#   scripts/modern-loaders.sh env      print the variables below (sh syntax)
#   scripts/modern-loaders.sh acquire PID / release PID
#                                      what tests use: start if needed and hold
#                                      a lease for process PID; the last release
#                                      stops the daemons unless `start` started
#                                      them (leases of dead PIDs do not count)
#
# Run as root. The chroot lives in $MODERN_LOADERS_DIR/root (default
# /var/lib/docker-save-modern/root) and is kept on disk after `stop`, so the
# next `start` takes seconds; only a missing or half-built chroot is (re)built
# (debootstrap --variant=minbase sid + apt-get: under a minute here).
#
# How to use it, from the host (what tests/_kit/modern.ts does):
#   chroot "$MODERN_LOADERS_ROOT" docker load -i /tmp/x.tar
#   chroot "$MODERN_LOADERS_ROOT" ctr images import --all-platforms /tmp/x.tar
#   chroot "$MODERN_LOADERS_ROOT" skopeo|crane|umoci …
# Files the tools read go under "$MODERN_LOADERS_ROOT/tmp" (seen as /tmp inside).
# The chroot shares the host's network, so a registry on 127.0.0.1 is reachable.
# The sockets are visible from the host too:
#   DOCKER_HOST=unix://$MODERN_LOADERS_ROOT/run/docker.sock
#   CONTAINERD_ADDRESS=$MODERN_LOADERS_ROOT/run/containerd/containerd.sock
set -euo pipefail

DIR="${MODERN_LOADERS_DIR:-/var/lib/docker-save-modern}"
ROOT="${DIR}/root"
MIRROR="${MODERN_LOADERS_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=(docker.io docker-cli containerd crane skopeo umoci busybox-static
  ca-certificates)
# Bump when PACKAGES or the configuration below change: an older chroot is
# then completed (apt-get install) instead of reused as is.
STAMP_VERSION=1
STAMP="${ROOT}/.docker-save-modern-loaders"
LOG_DIR="${DIR}/log"
LEASES="${DIR}/leases"
# Present while an explicit `start` holds the daemons up.
PINNED="${DIR}/pinned"

say() { printf 'modern-loaders: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

in_root() { chroot "${ROOT}" "$@"; }

# The PID in FILE, if that process is alive and runs BINARY.
live_pid() {
  local file="$1" binary="$2" pid
  [[ -s "${file}" ]] || return 1
  pid="$(<"${file}")"
  [[ -d "/proc/${pid}" ]] || return 1
  [[ "$(readlink "/proc/${pid}/exe" 2>/dev/null)" == *"${binary}"* ]] || return 1
  printf '%s\n' "${pid}"
}

answers() {
  in_root ctr version >/dev/null 2>&1 &&
    in_root docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

running() {
  live_pid "${DIR}/containerd.pid" containerd >/dev/null &&
    live_pid "${DIR}/dockerd.pid" dockerd >/dev/null && answers
}

build_chroot() {
  if [[ -f "${STAMP}" && "$(<"${STAMP}")" == "${STAMP_VERSION}" ]]; then
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install -y debootstrap"
  if [[ ! -x "${ROOT}/usr/bin/apt-get" || ! -f "${ROOT}/.debootstrap-done" ]]; then
    # A half-built chroot (interrupted debootstrap): start over, but never
    # delete through a mount point.
    if findmnt -rn -o TARGET | grep -q "^${ROOT}"; then
      die "${ROOT} is half-built and has mounts: run '$0 stop' first"
    fi
    rm -rf "${ROOT}"
    mkdir -p "${DIR}"
    say "debootstrap --variant=minbase sid ${ROOT} (${MIRROR})"
    debootstrap --variant=minbase sid "${ROOT}" "${MIRROR}" \
      >"${DIR}/debootstrap.log" 2>&1 ||
      die "debootstrap failed, see ${DIR}/debootstrap.log"
    touch "${ROOT}/.debootstrap-done"
  fi
  # No service starts from package scripts inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"${ROOT}/usr/sbin/policy-rc.d"
  chmod +x "${ROOT}/usr/sbin/policy-rc.d"
  say "apt-get install ${PACKAGES[*]}"
  # sid's Release file may be older than this machine's clock.
  in_root apt-get -o Acquire::Check-Valid-Until=false update \
    >"${DIR}/apt.log" 2>&1 || die "apt-get update failed, see ${DIR}/apt.log"
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y \
    --no-install-recommends "${PACKAGES[@]}" >>"${DIR}/apt.log" 2>&1 ||
    die "apt-get install failed, see ${DIR}/apt.log"
  in_root apt-get clean
  printf '%s\n' "${STAMP_VERSION}" >"${STAMP}"
}

write_config() {
  mkdir -p "${ROOT}/etc/containerd" "${ROOT}/etc/docker"
  # Inside a chroot these snapshotters and the CRI plugins cannot find the
  # mount information they need, and containerd 2.1 then refuses to start.
  cat >"${ROOT}/etc/containerd/config.toml" <<'EOF'
version = 3
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.differ.v1.erofs",
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.sandbox.controller.v1.shim",
]
EOF
  # The containerd image store (docker ≥ 29's default), on the `native`
  # snapshotter (plain copies; no overlay inside the chroot); no networking.
  cat >"${ROOT}/etc/docker/daemon.json" <<'EOF'
{
  "features": { "containerd-snapshotter": true },
  "storage-driver": "native",
  "iptables": false,
  "ip6tables": false,
  "bridge": "none"
}
EOF
}

mounted() { mountpoint -q "$1"; }

mount_all() {
  # runc needs the chroot's root to be a mount point of its own ("mount
  # dst=/, flags=MS_REC|MS_SLAVE: invalid argument" otherwise).
  mounted "${ROOT}" || mount --bind "${ROOT}" "${ROOT}"
  mounted "${ROOT}/proc" || mount -t proc proc "${ROOT}/proc"
  if ! mounted "${ROOT}/sys"; then
    mount --rbind /sys "${ROOT}/sys" # cgroups, recursively
    mount --make-rslave "${ROOT}/sys"
  fi
  if ! mounted "${ROOT}/dev"; then
    mount --rbind /dev "${ROOT}/dev"
    mount --make-rslave "${ROOT}/dev"
  fi
  # A fresh /run each start: no stale sockets or PID files.
  mounted "${ROOT}/run" || mount -t tmpfs -o mode=755 tmpfs "${ROOT}/run"
  mkdir -p "${ROOT}/tmp" && chmod 1777 "${ROOT}/tmp"
}

unmount_all() {
  local target
  for target in run dev sys proc; do
    if mounted "${ROOT}/${target}"; then
      umount -R "${ROOT}/${target}" 2>/dev/null || umount -R -l "${ROOT}/${target}"
    fi
  done
  if mounted "${ROOT}"; then
    umount "${ROOT}" 2>/dev/null || umount -l "${ROOT}"
  fi
}

# Starts BINARY ARGS… inside the chroot in its own session; records its PID
# (chroot execs the binary, so `$!` is the daemon's PID).
start_daemon() {
  local name="$1"
  shift
  mkdir -p "${LOG_DIR}"
  # fd 9 (the lock) is not inherited, or the daemon would hold it.
  setsid chroot "${ROOT}" "$@" </dev/null >>"${LOG_DIR}/${name}.log" 2>&1 9>&- &
  printf '%s\n' "$!" >"${DIR}/${name}.pid"
}

wait_for() {
  local what="$1" pidfile="$2"
  shift 2
  local deadline=$((SECONDS + 60)) pid
  pid="$(<"${pidfile}")"
  until "$@" >/dev/null 2>&1; do
    # Alive is enough here: just after the fork it still runs setsid or
    # chroot, not yet the daemon.
    [[ -d "/proc/${pid}" ]] ||
      die "${what} exited; last lines of ${LOG_DIR}/${what}.log:
$(tail -n 20 "${LOG_DIR}/${what}.log")"
    ((SECONDS < deadline)) || die "${what} did not answer in 60 s"
    sleep 0.2
  done
}

# Stops the daemon in PIDFILE by its PID: SIGTERM, then SIGKILL after 20 s.
stop_daemon() {
  local pidfile="$1" binary="$2" pid
  if pid="$(live_pid "${pidfile}" "${binary}")"; then
    kill -TERM "${pid}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      [[ -d "/proc/${pid}" ]] || break
      sleep 0.2
    done
    [[ -d "/proc/${pid}" ]] && kill -KILL "${pid}" 2>/dev/null || true
  fi
  rm -f "${pidfile}"
}

# Processes still rooted in the chroot after the daemons stopped (container
# shims of a killed containerd): listed by PID, each checked to run inside
# this chroot, then killed by that PID.
stop_leftovers() {
  local proc pid
  for proc in /proc/[0-9]*; do
    pid="${proc#/proc/}"
    case "$(readlink "${proc}/root" 2>/dev/null)" in
    "${ROOT}" | "${ROOT}/"*) ;;
    *) continue ;;
    esac
    say "stopping leftover PID ${pid} ($(cat "${proc}/comm" 2>/dev/null))"
    kill -KILL "${pid}" 2>/dev/null || true
  done
}

print_env() {
  cat <<EOF
MODERN_LOADERS_ROOT=${ROOT}
DOCKER_HOST=unix://${ROOT}/run/docker.sock
CONTAINERD_ADDRESS=${ROOT}/run/containerd/containerd.sock
EOF
}

print_versions() {
  in_root dpkg-query -W -f '${Package} ${Version}, ' docker.io containerd \
    crane skopeo umoci runc
  in_root docker info --format 'image store: {{.DriverStatus}}'
}

start_daemons() {
  [[ "$(id -u)" == 0 ]] || die "run as root (chroot, mount)"
  if running; then
    say "already running"
    return
  fi
  local started=${SECONDS}
  build_chroot
  write_config
  # Daemons left from a crash: stop them (by their recorded PIDs) first.
  stop_daemon "${DIR}/dockerd.pid" dockerd
  stop_daemon "${DIR}/containerd.pid" containerd
  mount_all
  start_daemon containerd /usr/bin/containerd --config /etc/containerd/config.toml
  wait_for containerd "${DIR}/containerd.pid" in_root ctr version
  start_daemon dockerd /usr/sbin/dockerd \
    --containerd /run/containerd/containerd.sock \
    --pidfile /run/docker.pid
  wait_for dockerd "${DIR}/dockerd.pid" \
    in_root docker version --format '{{.Server.Version}}'
  say "started in $((SECONDS - started)) s: $(print_versions)"
}

start() {
  start_daemons
  touch "${PINNED}"
  print_env
}

acquire() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] || die "usage: $0 acquire PID"
  start_daemons
  mkdir -p "${LEASES}"
  touch "${LEASES}/$1"
  print_env
}

release() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] || die "usage: $0 release PID"
  rm -f "${LEASES}/$1"
  local lease
  for lease in "${LEASES}"/*; do
    [[ -e "${lease}" ]] || continue
    if [[ -d "/proc/${lease##*/}" ]]; then
      say "still held by PID ${lease##*/}"
      return
    fi
    rm -f "${lease}"
  done
  if [[ -f "${PINNED}" ]]; then
    say "kept running (started by 'start')"
    return
  fi
  stop
}

stop() {
  [[ "$(id -u)" == 0 ]] || die "run as root (chroot, mount)"
  rm -rf "${PINNED}" "${LEASES}"
  stop_daemon "${DIR}/dockerd.pid" dockerd
  stop_daemon "${DIR}/containerd.pid" containerd
  [[ -d "${ROOT}" ]] && stop_leftovers
  [[ -d "${ROOT}" ]] && unmount_all
  say "stopped (chroot kept in ${ROOT})"
}

status() {
  if running; then
    say "running: $(print_versions)"
    print_env
  else
    say "not running"
    return 1
  fi
}

with_lock() {
  mkdir -p "${DIR}"
  exec 9>"${DIR}/lock"
  flock 9
  "$@"
}

case "${1:-}" in
start) with_lock start ;;
stop) with_lock stop ;;
acquire) with_lock acquire "${2:-}" ;;
release) with_lock release "${2:-}" ;;
status) status ;;
env) print_env ;;
*)
  echo "usage: $0 start|stop|status|env" >&2
  exit 2
  ;;
esac
