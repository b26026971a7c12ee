# shellcheck shell=bash
# Shared by the provision/ scripts (sourced, never run). They run on the node as root, from
# `vagrant provision` and from `kube-ipsec provision` over ssh alike.
#
# Output contract: stdout carries report lines only, one fact each ("install /etc/ipsec.conf",
# "restart kubelet.service", …), which `kube-ipsec provision` parses into its summary;
# everything for humans (progress, apt's chatter, errors) goes to stderr.

# On-node paths; the same values as PATHS in src/plan/paths.ts (a unit test compares them).
# shellcheck disable=SC2034 # used by the scripts that source this file
readonly STATE_DIR=/var/lib/kube-ipsec
readonly ARCHIVE_CACHE=/var/cache/kube-ipsec/archives
readonly FILES_MANIFEST=/etc/kube-ipsec/files.tsv
readonly RESTART_MAP=/etc/kube-ipsec/restart.tsv
readonly NODE_ENV=/etc/kube-ipsec/node.env
readonly ARTIFACTS=/etc/kube-ipsec/artifacts.tsv
readonly SYSTEMD_DIR=/etc/systemd/system

# A report line. The caller may have gone away (ssh connection dropped): never let a failed
# write stop an installation halfway (SIGPIPE is ignored by `provision`).
report() { printf '%s\n' "$*" 2>/dev/null || true; }
log() { printf '%s\n' "$*" >&2 2>/dev/null || true; }
die() {
	log "error: $*"
	exit 1
}

# --root DIR: everything below DIR instead of / (tests use scratch roots, one per node).
# ROOT is "" for / so that "$ROOT$path" is always the right spelling.
set_root() {
	local dir=${1:-/}
	[ -d "$dir" ] || die "--root $dir: no such directory"
	dir=$(cd "$dir" && pwd -P)
	ROOT=${dir%/}
	STATE=$ROOT$STATE_DIR
	TXN=$STATE/txn
	export KUBE_IPSEC_ROOT=${ROOT:-/}
}

# Below a scratch root, the real systemctl and apt-get would act on this machine, not the
# root: they must be replaced (tests put recorders there). Checked before anything runs.
need_standin() { # need_standin VAR COMMAND
	[ -z "$ROOT" ] || [ -n "${!1:-}" ] ||
		die "--root $ROOT: set $1 to a stand-in; the real $2 would act on this machine"
}
systemctl_() { "${KUBE_IPSEC_SYSTEMCTL:-systemctl}" "$@"; }
apt_get_() { "${KUBE_IPSEC_APT_GET:-apt-get}" "$@"; }

# One provisioning run per node at a time. The lock is inherited by the scripts a run
# calls (and by `provision` when `kube-ipsec provision`'s session took it first).
take_lock() {
	[ "${KUBE_IPSEC_LOCK_HELD:-}" = "$STATE" ] && return 0
	mkdir -p "$STATE"
	chmod 0700 "$STATE"
	exec 9>>"$STATE/lock"
	# A run whose caller just went away may take a moment to notice; wait that long, no more.
	flock -w 10 9 || die "another provisioning run has held $STATE/lock for 10 s; wait for it to finish"
	export KUBE_IPSEC_LOCK_HELD=$STATE
}

# env_value FILE NAME: a value of node.env (NAME=value or NAME="value"), without sourcing it.
env_value() {
	local line value=''
	[ -f "$1" ] || return 0
	while IFS= read -r line || [ -n "$line" ]; do
		[[ $line == "$2="* ]] && value=${line#*=}
	done <"$1"
	value=${value#\"}
	printf '%s' "${value%\"}"
}

# sha256_lines FILE…: "<hex> <path>" per readable file. openssl uses the CPU's SHA
# instructions (several times faster than sha256sum on a 100 MB plugin); both are usually there.
sha256_lines() {
	[ $# -gt 0 ] || return 0
	if command -v openssl >/dev/null 2>&1; then
		openssl dgst -sha256 -r "$@" 2>/dev/null | sed -E 's/^([0-9a-f]+) \*/\1 /' || true
	else
		sha256sum "$@" 2>/dev/null | sed -E 's/^([0-9a-f]+)  /\1 /' || true
	fi
}

# --- The transaction: one per run that changes something ---------------------------------
# $TXN holds what the run changed (changed), the previous versions of the files it replaced
# or removed (backup/, saved), the files it created (created), the units it has restarted
# (restarted) and the manifest before it (manifest.before). It exists only while a run is
# under way or after one failed; on success it becomes $STATE/previous (what --rollback
# restores). A run that finds it open resumes it: restarts still owed are owed again.

txn_open() {
	[ -d "$TXN" ] && return 0
	rm -rf "$TXN.new"
	mkdir -p "$TXN.new/backup"
	chmod 0700 "$TXN.new"
	if [ -f "$STATE/installed.tsv" ]; then cp "$STATE/installed.tsv" "$TXN.new/manifest.before"; else : >"$TXN.new/manifest.before"; fi
	: >"$TXN.new/changed"
	: >"$TXN.new/saved"
	: >"$TXN.new/created"
	: >"$TXN.new/restarted"
	mv "$TXN.new" "$TXN"
}

# txn_has LIST PATH
txn_has() { [ -f "$TXN/$1" ] && grep -Fxq -- "$2" "$TXN/$1"; }

# Records that PATH is about to change. Written before the change, so a run killed right
# after it still knows which units it owes a restart.
txn_changed() {
	txn_open
	txn_has changed "$1" || printf '%s\n' "$1" >>"$TXN/changed"
}

# Keeps the version of PATH from before this transaction (once: a resumed run must not
# overwrite the true previous version with a half-applied one).
txn_backup() {
	local path=$1 dest=$ROOT$1
	txn_has saved "$path" && return 0
	txn_has created "$path" && return 0
	if [ -e "$dest" ]; then
		mkdir -p "$TXN/backup${path%/*}"
		cp -p -- "$dest" "$TXN/backup$path"
		printf '%s\n' "$path" >>"$TXN/saved"
	else
		printf '%s\n' "$path" >>"$TXN/created"
	fi
}

txn_commit() {
	[ -d "$TXN" ] || return 0
	rm -rf "$STATE/previous"
	mv "$TXN" "$STATE/previous"
}

# install_file SRC PATH MODE: atomic replacement (temp file + rename) with the final owner
# and mode set before the rename; a secret is never readable by others, not even briefly.
install_file() {
	local src=$1 dest=$ROOT$2 mode=$3 tmp
	mkdir -p "${dest%/*}"
	tmp=${dest%/*}/.${dest##*/}.kube-ipsec-new
	rm -f -- "$tmp"
	(umask 077 && cp -- "$src" "$tmp")
	chown 0:0 "$tmp"
	chmod "$mode" "$tmp"
	sync -- "$tmp"
	mv -f -- "$tmp" "$dest"
}
