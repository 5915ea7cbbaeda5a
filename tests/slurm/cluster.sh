#!/usr/bin/env bash
# A throw-away one-node SLURM cluster on this machine, for the slurm tests (make test-slurm).
#
#   tests/slurm/cluster.sh up [DIR]    install slurm and munge if missing, start munged, MariaDB,
#                                      slurmdbd, slurmctld and slurmd with their files under DIR,
#                                      wait until the node is idle
#   tests/slurm/cluster.sh down [DIR]  cancel the cluster's jobs, stop exactly the daemons `up` started
#
# DIR defaults to $SLURM_TEST_DIR, else /tmp/noise2same-slurm. Point the SLURM commands at the cluster
# with `export SLURM_CONF=DIR/etc/slurm.conf`. Needs root (Debian packages, daemons running as root).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ACTION="${1:-}"
DIR="${2:-${SLURM_TEST_DIR:-/tmp/noise2same-slurm}}"
# Ports away from SLURM's defaults (6817-6819), so a system cluster on the machine is left alone.
CTLD_PORT=16817 SLURMD_PORT=16818 DBD_PORT=16819
DAEMONS="slurmd slurmctld slurmdbd mariadbd munged"  # the order `down` stops them in
PACKAGES="slurmctld slurmd slurm-client slurmdbd munge mariadb-server"
MUNGE_SOCKET=/run/munge/munge.socket.2
export SLURM_CONF="$DIR/etc/slurm.conf" MYSQL_UNIX_PORT="$DIR/run/mysqld.sock"

say() { echo "cluster.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# Wait up to $1 seconds for the command in the rest of the arguments to succeed.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.25
    done
}

# The pid in DIR/run/NAME.pid when that process is alive and is NAME (not a reused pid).
live_pid() {
    local file="$DIR/run/$1.pid" pid
    [ -s "$file" ] || return 1
    pid="$(tr -dc 0-9 < "$file")"
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

install_packages() {
    local missing=""
    for command in slurmctld slurmd slurmdbd sbatch sacct munged unmunge mariadbd mariadb-install-db mariadb-admin; do
        command -v "$command" >/dev/null || missing="$missing $command"
    done
    [ -z "$missing" ] && return 0
    [ "$(id -u)" = 0 ] || die "missing$missing; run as root to install $PACKAGES"
    say "installing $PACKAGES (missing:$missing)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq < /dev/null
    apt-get install -y -qq --no-install-recommends $PACKAGES < /dev/null > "${TMPDIR:-/tmp}/cluster-install.log" 2>&1 \
        || { tail -20 "${TMPDIR:-/tmp}/cluster-install.log" >&2; die "apt-get install failed"; }
}

# Fill a template's @NAME@ fields.
render() {
    sed -e "s|@DIR@|$DIR|g" -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@DBD_PORT@|$DBD_PORT|g" -e "s|@NODE@|$NODE|g" "$1"
}

node_idle() { [ "$(sinfo -h -n localhost -o %t)" = idle ]; }

up() {
    [ "$(id -u)" = 0 ] || die "needs root (the daemons run as root)"
    for daemon in $DAEMONS; do
        live_pid "$daemon" >/dev/null && die "$daemon of a cluster in $DIR is running; run '$0 down $DIR' first"
    done
    install_packages
    rm -rf "$DIR"
    mkdir -p "$DIR"/{etc,run,log,db,spool/slurmctld,spool/slurmd}
    # This machine's CPUs, sockets, cores, threads and memory as slurmd sees them, for the one node.
    NODE="$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')"
    render "$HERE/slurm.conf.in" > "$SLURM_CONF"
    render "$HERE/slurmdbd.conf.in" > "$DIR/etc/slurmdbd.conf"
    chmod 600 "$DIR/etc/slurmdbd.conf"

    # SLURM's clients reach munged on its default socket: a munged already serving it is used as it is.
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        dd if=/dev/urandom of="$DIR/etc/munge.key" bs=1024 count=1 status=none
        chmod 400 "$DIR/etc/munge.key"
        mkdir -p "$(dirname "$MUNGE_SOCKET")"
        munged --force --key-file="$DIR/etc/munge.key" --socket="$MUNGE_SOCKET" --pid-file="$DIR/run/munged.pid" \
            --log-file="$DIR/log/munged.log" --seed-file="$DIR/run/munged.seed"
    fi

    mariadb-install-db --no-defaults --datadir="$DIR/db" --user=root --auth-root-authentication-method=socket \
        --skip-test-db > "$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed: see $DIR/log"
    # No TCP: slurmdbd reaches it through the socket in $MYSQL_UNIX_PORT, as root over socket authentication.
    mariadbd --no-defaults --datadir="$DIR/db" --socket="$MYSQL_UNIX_PORT" --pid-file="$DIR/run/mariadbd.pid" \
        --skip-networking --user=root --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=32M \
        < /dev/null > /dev/null 2>&1 &
    wait_for 60 mariadb-admin --socket="$MYSQL_UNIX_PORT" ping || die "MariaDB did not start: see $DIR/log/mariadb.log"

    slurmdbd
    wait_for 30 sacctmgr -n list cluster || die "slurmdbd did not answer: see $DIR/log/slurmdbd.log"
    sacctmgr -i add cluster noise2same-test > /dev/null
    slurmctld
    wait_for 30 scontrol ping || die "slurmctld did not start: see $DIR/log/slurmctld.log"
    slurmd -N localhost
    wait_for 60 node_idle || die "the node did not become idle: $(sinfo -h -o '%t %E' 2>&1); see $DIR/log/slurmd.log"
    sinfo >&2
    say "up; use it with: export SLURM_CONF=$SLURM_CONF"
}

# Stop a daemon of ours: SIGTERM, then SIGKILL after 15 s.
stop() {
    local pid
    pid="$(live_pid "$1")" || return 0
    kill "$pid"
    wait_for 15 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
}

down() {
    if live_pid slurmctld >/dev/null; then  # the cluster's jobs go first, so no job process outlives it
        local jobs
        jobs="$(squeue -h -o %A 2>/dev/null | sort -u)"
        [ -z "$jobs" ] || scancel --quiet $jobs || true
        wait_for 20 bash -c '[ -z "$(squeue -h -o %i)" ]' || say "some jobs had not ended: $(squeue -h 2>&1)"
    fi
    for daemon in $DAEMONS; do
        stop "$daemon"
    done
    say "down (logs kept in $DIR/log)"
}

case "$ACTION" in
    up) up ;;
    down) down ;;
    *) die "usage: $0 up|down [DIR]" ;;
esac
