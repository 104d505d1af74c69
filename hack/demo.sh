#!/usr/bin/env bash
# hack/demo.sh up|down|status: the nodeaction-operator demo (make demo, make demo-down).
#
# up    starts, on this machine and with no network: etcd and kube-apiserver
#       (bin/k8s, through hack/localcluster), fakecloud (hack/fakecloud) on
#       127.0.0.1:18080, installs the CRDs, runs the manager (bin/manager),
#       applies config/samples and shows them run: a NodeActionSet reboots
#       six droplets two at a time; of the NodeActions most reach Ready, one
#       reboots a Kubernetes Node (drained first, back with a new bootID
#       after; fakecloud plays its kubelet), one fails (Stalled,
#       NodeNotFound) and one meets a rate limit first (RateLimited).
#       Everything stays up afterwards.
# down  stops what up started and removes .demo/.
#
# State, logs and process ids live in .demo/ (git-ignored).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=$ROOT/.demo
PIDS=$DEMO/pids
BIN=$ROOT/bin
ASSETS=${KUBEBUILDER_ASSETS:-$BIN/k8s}
KUBECTL=$ASSETS/kubectl
KCFG=$DEMO/kubeconfig
FAKECLOUD_ADDR=127.0.0.1:18080 # the samples' endpoints (internal/fakecloud/demo.Addr)
FAKECLOUD=http://$FAKECLOUD_ADDR
METRICS_PORT=${DEMO_METRICS_PORT:-8080}
WAIT=${DEMO_WAIT_SECONDS:-90}

START=$SECONDS
if [ -t 1 ]; then BOLD=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GREEN=$'\e[32m' RESET=$'\e[0m'; else BOLD='' DIM='' RED='' GREEN='' RESET=''; fi
step() { printf '\n%s==> %s%s %s(%ds)%s\n' "$BOLD" "$*" "$RESET" "$DIM" $((SECONDS - START)) "$RESET"; }
info() { printf '    %s\n' "$*"; }
die() {
	printf '%serror: %s%s\n' "$RED" "$*" "$RESET" >&2
	exit 1
}
kc() { "$KUBECTL" --kubeconfig "$KCFG" "$@"; }
# show prints a command, then runs it.
show() {
	printf '%s$ %s%s\n' "$DIM" "kubectl ${*}" "$RESET"
	kc "$@"
}

# listening tells whether something accepts connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p
	for p in $(seq "$1" $(($1 + 200))); do
		if ! listening "$p"; then
			echo "$p"
			return
		fi
	done
	die "no free port from $1 to $(($1 + 200))"
}

# alive tells whether the process recorded as $1 runs, and is still the
# program we started (its command line starts with the path in $2).
alive() {
	local f=$PIDS/$1 pid
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

# start NAME LOG BINARY ARGS...: runs a program in a session of its own (so
# it outlives this script and the terminal's Ctrl-C) and records its pid.
start() {
	local name=$1 log=$2
	shift 2
	setsid "$@" >"$log" 2>&1 </dev/null &
	echo $! >"$PIDS/$name"
}

# wait_for WHAT SECONDS NAME COMMAND...: polls COMMAND until it succeeds;
# fails with the process's log when NAME exits or time runs out.
wait_for() {
	local what=$1 secs=$2 name=$3
	shift 3
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$(cat "$PIDS/$name")" 2>/dev/null; then
			tail -n 30 "$DEMO/$name.log" >&2 || true
			die "$name exited while waiting for $what (log: .demo/$name.log)"
		fi
		if [ $SECONDS -ge $deadline ]; then
			tail -n 30 "$DEMO/$name.log" >&2 || true
			die "timed out after ${secs}s waiting for $what (log: .demo/$name.log)"
		fi
		sleep 0.2
	done
}

# stop NAME BINARY SECONDS: SIGTERM, then SIGKILL after SECONDS.
stop() {
	local name=$1 binary=$2 secs=$3 pid
	alive "$name" "$binary" || return 0
	pid=$(cat "$PIDS/$name")
	kill -TERM "$pid" 2>/dev/null || return 0
	local deadline=$((SECONDS + secs))
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
	if kill -0 "$pid" 2>/dev/null; then
		info "$name (pid $pid) did not stop in ${secs}s: killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	info "stopped $name (pid $pid)"
}

down() {
	if [ ! -d "$DEMO" ]; then
		echo "No demo is running (no .demo/ directory)."
		return 0
	fi
	step "Stopping the demo"
	stop manager "$BIN/manager" 15
	stop fakecloud "$BIN/fakecloud" 10
	# localcluster stops kube-apiserver and etcd itself (up to 20s each) ...
	stop localcluster "$BIN/localcluster" 50
	# ... and should it have died first, they are stopped here, by the pids
	# recorded when they started (each checked to still run with .demo/ state).
	local pid
	if [ -f "$PIDS/controlplane" ]; then
		while read -r pid; do
			[ -n "$pid" ] || continue
			if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DEMO/"; then
				kill -TERM "$pid" 2>/dev/null || true
				for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
				kill -KILL "$pid" 2>/dev/null || true
				info "stopped control-plane process $pid"
			fi
		done < <(tac "$PIDS/controlplane")
	fi
	if [ "${1:-}" = keep-logs ]; then
		rm -rf "$PIDS" "$KCFG" "$DEMO/cluster/etcd" "$DEMO/cluster/apiserver"
		info "logs kept in .demo/ ('make demo-down' removes them)"
	else
		rm -rf "$DEMO"
		info "removed .demo/"
	fi
}

status() {
	local n
	for n in localcluster:$BIN/localcluster fakecloud:$BIN/fakecloud manager:$BIN/manager; do
		if alive "${n%%:*}" "${n#*:}"; then
			info "${n%%:*}: running (pid $(cat "$PIDS/${n%%:*}"))"
		else
			info "${n%%:*}: not running"
		fi
	done
}

usage() {
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

up() {
	if [ -d "$DEMO" ]; then
		if alive localcluster "$BIN/localcluster" || alive fakecloud "$BIN/fakecloud" || alive manager "$BIN/manager"; then
			echo "The demo is already running:"
			status
			echo "export KUBECONFIG=$KCFG   # to use it;   make demo-down   # to stop it"
			exit 1
		fi
		rm -rf "$DEMO" # left over from a demo that did not stop cleanly
	fi

	step "Checking binaries"
	local b
	for b in etcd kube-apiserver kubectl; do
		[ -x "$ASSETS/$b" ] || die "$ASSETS/$b is missing: run 'make demo' (or 'make controlplane'), which builds it from Go modules once (about 11 minutes)"
	done
	for b in manager:. fakecloud:./hack/fakecloud localcluster:./hack/localcluster; do
		if [ ! -x "$BIN/${b%%:*}" ]; then
			info "building bin/${b%%:*}"
			(cd "$ROOT" && go build -o "$BIN/${b%%:*}" "${b#*:}")
		fi
	done
	info "control plane: $ASSETS ($("$KUBECTL" version --client 2>/dev/null | head -n 1))"

	listening "${FAKECLOUD_ADDR##*:}" && die "$FAKECLOUD_ADDR is in use: the samples expect fakecloud there (is an old demo running? 'make demo-down')"
	if listening "$METRICS_PORT"; then
		info "port $METRICS_PORT is in use: serving the manager's metrics elsewhere"
		METRICS_PORT=$(free_port 18090)
	fi
	local probe_port
	probe_port=$(free_port $((METRICS_PORT + 1)))
	[ "$probe_port" != "$METRICS_PORT" ] || probe_port=$(free_port $((METRICS_PORT + 2)))

	mkdir -p "$PIDS"
	# Whatever fails from here on, leave nothing running behind.
	trap 'rc=$?; if [ $rc -ne 0 ]; then echo "the demo failed: stopping what it started" >&2; down keep-logs >&2; fi' EXIT

	step "Starting etcd and kube-apiserver on free loopback ports (hack/localcluster, state in .demo/cluster)"
	start localcluster "$DEMO/localcluster.log" "$BIN/localcluster" --dir "$DEMO/cluster" --kubeconfig "$KCFG" --assets "$ASSETS"
	wait_for "kube-apiserver" 90 localcluster test -s "$KCFG"
	# Record etcd's and kube-apiserver's pids, so 'down' can stop them even
	# if localcluster is gone by then.
	pgrep -P "$(cat "$PIDS/localcluster")" >"$PIDS/controlplane" || true
	wait_for "kube-apiserver to answer" 30 localcluster kc get --raw /readyz
	info "$(grep -o 'kube-apiserver https[^ ]* is up after .*' "$DEMO/localcluster.log" || true)"

	step "Starting fakecloud on $FAKECLOUD (demo VMs for all five provider APIs, and the kubelet of the demo Node; log: .demo/fakecloud.log)"
	start fakecloud "$DEMO/fakecloud.log" "$BIN/fakecloud" --addr "$FAKECLOUD_ADDR" --kubeconfig "$KCFG"
	wait_for "fakecloud" 20 fakecloud curl -sf "$FAKECLOUD/fakecloud/vms"
	info "$(curl -sf "$FAKECLOUD/fakecloud/vms" | grep -o '"ID"' | wc -l) VMs, each action takes 3s"

	step "Installing the CRDs (config/crd/bases)"
	show apply -f "$ROOT/config/crd/bases"
	kc wait --for condition=established --timeout=30s crd/nodeactions.compute.nodeaction.dev crd/nodeactionsets.compute.nodeaction.dev \
		crd/providers.compute.nodeaction.dev >/dev/null

	step "Starting the manager (bin/manager; metrics on http://127.0.0.1:$METRICS_PORT/metrics; log: .demo/manager.log)"
	start manager "$DEMO/manager.log" "$BIN/manager" --kubeconfig "$KCFG" \
		--metrics-bind-address "127.0.0.1:$METRICS_PORT" --metrics-secure=false \
		--health-probe-bind-address "127.0.0.1:$probe_port"
	wait_for "the manager to be ready" 30 manager curl -sf "http://127.0.0.1:$probe_port/readyz"
	info "ready (probes on 127.0.0.1:$probe_port)"

	step "Telling fakecloud to answer droplet 3164497's next action with 429 Too Many Requests, Retry-After: 5"
	# BEGIN rate-limit fault (the same as internal/fakecloud/demo.RateLimitFault; a test checks)
	curl -sf -X POST "$FAKECLOUD/fakecloud/faults" -H 'Content-Type: application/json' --data-binary @- <<'JSON'
{"skin": "digitalocean", "method": "POST", "pathContains": "/droplets/3164497/actions", "actionOnly": true, "times": 1, "mode": "reject", "status": 429, "retryAfter": 5, "body": "{\"id\":\"too_many_requests\",\"message\":\"API Rate limit exceeded.\"}"}
JSON
	# END rate-limit fault

	step "A Kubernetes Node on droplet 3164493, with a pod of a ReplicaSet on it (fakecloud plays its kubelet)"
	kc apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Node
metadata:
  name: demo-worker-1
spec:
  providerID: digitalocean://3164493
---
apiVersion: v1
kind: Pod
metadata:
  name: web-7d4b9c-x2x9k
  namespace: default
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-7d4b9c, uid: 6b1d3c2e-0000-4000-8000-000000000001, controller: true}
spec:
  nodeName: demo-worker-1
  containers:
  - {name: web, image: registry.example/web:1}
YAML
	wait_for "the demo Node to be Ready" 20 fakecloud kc wait --for=condition=Ready --timeout=1s node/demo-worker-1
	show get nodes -o wide

	step "Applying the samples: kubectl apply -k config/samples"
	show apply -k "$ROOT/config/samples"

	step "The NodeActionSet workers-reboot reboots six droplets, two at a time (maxUnavailable: 2)"
	local set_deadline=$((SECONDS + WAIT)) line last="" succeeded reason flight
	printf '%s%-8s %-9s %-9s %s%s\n' "$DIM" "time" "succeeded" "reason" "members in flight" "$RESET"
	while :; do
		line=$(kc get nodeactionset/workers-reboot -o jsonpath='{.status.succeeded}/{.status.total} {.status.conditions[?(@.type=="Ready")].reason} {.status.inFlight}' 2>/dev/null || true)
		if [ -n "$line" ] && [ "$line" != "$last" ]; then
			read -r succeeded reason flight <<<"$line"
			printf '%-8s %-9s %-9s %s\n' "$((SECONDS - START))s" "$succeeded" "$reason" "${flight:-[]}"
			last=$line
		fi
		[ "${reason:-}" = Completed ] && break
		[ $SECONDS -lt $set_deadline ] || die "workers-reboot did not finish in ${WAIT}s (see .demo/manager.log)"
		sleep 0.3
	done
	show get nodeactionset/workers-reboot
	show get nodeactions -l compute.nodeaction.dev/nodeactionset=workers-reboot
	info "fakecloud's own timeline (each reboot from its accepted POST to its end): at most $(curl -sf "$FAKECLOUD/fakecloud/peak?vms=3164501,3164502,3164503,3164504,3164505,3164506" | grep -o '"peak":[0-9]*' | cut -d: -f2) ran at once"

	step "The rate-limited NodeAction waits for the Retry-After"
	local deadline=$((SECONDS + 30))
	until [ -n "$(kc get events --field-selector involvedObject.name=digitalocean-ratelimited,reason=RateLimited -o name 2>/dev/null)" ]; do
		[ $SECONDS -lt $deadline ] || die "digitalocean-ratelimited never reported RateLimited (see .demo/manager.log)"
		sleep 0.2
	done
	show get nodeaction/digitalocean-ratelimited
	show get events --field-selector involvedObject.name=digitalocean-ratelimited

	step "Meanwhile the others run (Reason is the Ready condition's reason)"
	show get providers,nodeactions

	step "Waiting for the NodeActions meant to succeed to be Ready"
	show wait --for=condition=Ready --timeout="${WAIT}s" \
		nodeaction/digitalocean-reboot nodeaction/digitalocean-rename nodeaction/digitalocean-resize nodeaction/digitalocean-ratelimited \
		nodeaction/senlin-reboot nodeaction/senlin-rebuild nodeaction/e2e-reboot nodeaction/e2e-reinstall \
		nodeaction/cloudsfor-reboot nodeaction/cloudsfor-resize nodeaction/openscaler-reboot nodeaction/openscaler-shutdown \
		nodeaction/digitalocean-node-reboot

	step "The NodeAction meant to fail is Stalled: droplet 3164999 does not exist"
	show wait --for=condition=Stalled --timeout="${WAIT}s" nodeaction/digitalocean-missing-droplet
	printf '%s$ %s%s\n' "$DIM" "kubectl get nodeaction/digitalocean-missing-droplet -o jsonpath='{.status.conditions[?(@.type==\"Stalled\")].reason}: {.status.message}'" "$RESET"
	printf '%s%s%s\n' "$RED" "$(kc get nodeaction/digitalocean-missing-droplet -o jsonpath='{.status.conditions[?(@.type=="Stalled")].reason}: {.status.message}')" "$RESET"

	step "All NodeActions at the end (the set's members included)"
	show get nodeactions -o wide

	step "The Node the reboot drained: cordoned, drained, rebooted (a new bootID), uncordoned"
	show describe node demo-worker-1
	show get pods -n default

	step "The rate-limited one's story, from kubectl describe"
	show describe nodeaction/digitalocean-ratelimited

	step "The manager's metrics: curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep -E '^nodeaction(set)?_' (histogram buckets left out)"
	curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^nodeaction(set)?_' | grep -v '_bucket{' || true

	trap - EXIT
	step "${GREEN}The demo is up${RESET}${BOLD}: it took $((SECONDS - START))s and keeps running"
	cat <<EOF
    kubeconfig:   $KCFG
    fakecloud:    $FAKECLOUD   (VMs: curl $FAKECLOUD/fakecloud/vms; calls: curl $FAKECLOUD/fakecloud/log)
    metrics:      http://127.0.0.1:$METRICS_PORT/metrics
    logs:         .demo/manager.log  .demo/fakecloud.log  .demo/localcluster.log

  Try:
    export KUBECONFIG=$KCFG
    $KUBECTL get providers,nodeactions,nodeactionsets
    $KUBECTL describe nodeactionset/workers-reboot
    $KUBECTL patch nas/workers-reboot --type=merge -p '{"spec":{"runID":"again"}}'   # run the set again
    $KUBECTL describe nodeaction/senlin-rebuild
    $KUBECTL explain nodeaction.spec
    $KUBECTL get nodeaction/e2e-reboot -o yaml

  Stop everything with:  make demo-down
EOF
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) usage ;;
esac
