#!/usr/bin/env bash
# The local stack: moto_server (DynamoDB, Scheduler, EventBridge), the Cupid simulator and
# `cargo lambda watch`, all on 127.0.0.1. Everything started here is stopped by PID on exit.
#   tests/stack.sh run    -> start all, bootstrap, first sync, stay in the foreground
#   tests/stack.sh test   -> start moto if needed, run the suite, stop what it started
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VENV=${VENV:-$ROOT/.local/venv}
STATE=${STATE:-$ROOT/.local/run}
MOTO_PORT=${MOTO_PORT:-5000}
SIM_PORT=${SIM_PORT:-9100}
WATCH_PORT=${WATCH_PORT:-8080}
LOCAL_CUPID="http://127.0.0.1:${SIM_PORT}"
export ADMIN_TOKEN=${ADMIN_TOKEN:-local-admin-token}
export CUPID_BASE_URL=${CUPID_BASE_URL:-$LOCAL_CUPID}
export CUPID_API_KEY=${CUPID_API_KEY:-local-dev-key}
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:${MOTO_PORT}}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export LOG_LEVEL=${LOG_LEVEL:-info}
# moto's account; deployed, the template passes the real ARNs.
export SCHEDULE_TARGET_ARN=${SCHEDULE_TARGET_ARN:-arn:aws:lambda:$AWS_REGION:123456789012:function:sync}
export SCHEDULE_ROLE_ARN=${SCHEDULE_ROLE_ARN:-arn:aws:iam::123456789012:role/cupid-sync-scheduler}
mkdir -p "$STATE"
PIDS=()

log() { printf '[stack] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  log "$2 did not open port $1 within $3 s; its log: $STATE/$2.log"
  tail -20 "$STATE/$2.log" >&2 || true
  return 1
}

stop_all() {
  # A second Ctrl-C / TERM (make passes its own on to us) must not cut the cleanup short.
  trap '' INT TERM
  local pid
  for pid in "${PIDS[@]:-}"; do
    [[ -n $pid ]] || continue
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [[ -n $pid ]] || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap 'stop_all' EXIT
trap 'exit 130' INT TERM

start_bg() { # name cmd...
  local name=$1; shift
  setsid "$@" >"$STATE/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  echo "$pid" >"$STATE/$name.pid"
}

start_moto() {
  if port_open "$MOTO_PORT"; then
    log "moto_server already answers on $MOTO_PORT; using it"
    return
  fi
  start_bg moto "$VENV/bin/python" "$ROOT/tests/moto_serial.py" 127.0.0.1 "$MOTO_PORT"
  wait_port "$MOTO_PORT" moto 60
}

start_sim() {
  if [[ $CUPID_BASE_URL != "$LOCAL_CUPID" ]]; then
    log "CUPID_BASE_URL=$CUPID_BASE_URL: not starting the simulator"
    return
  fi
  port_open "$SIM_PORT" && { log "port $SIM_PORT is busy; stop what holds it"; exit 1; }
  start_bg cupid-sim "$ROOT/target/debug/cupid-sim" --port "$SIM_PORT" --api-key "$CUPID_API_KEY"
  wait_port "$SIM_PORT" cupid-sim 30
}

write_env() {
  cat >"$STATE/watch.env" <<ENV
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$WATCH_PORT
AWS_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
ADMIN_TOKEN=$ADMIN_TOKEN
CUPID_BASE_URL=$CUPID_BASE_URL
CUPID_API_KEY=$CUPID_API_KEY
SCHEDULE_TARGET_ARN=$SCHEDULE_TARGET_ARN
SCHEDULE_ROLE_ARN=$SCHEDULE_ROLE_ARN
SYNC_DISPATCH=detached
WEBHOOKS_ALLOW_LOOPBACK=true
LOCAL_EVENT_TARGET=deliver
LOG_LEVEL=$LOG_LEVEL
ENV
  local v
  # Every variable the README documents reaches the functions when set; unset, the functions'
  # own defaults apply (table and schedule names: shared/src/adapters/tables.rs, config.rs).
  for v in PROPERTIES_TABLE DOCUMENTS_TABLE SYNC_LOGS_TABLE SETTINGS_TABLE SCHEDULE_NAME EVENT_BUS_NAME \
    SYNC_INTERVAL SYNC_BATCH_SIZE SYNC_MAX_CONCURRENT SYNC_RETRY_ATTEMPTS SYNC_ENABLE_AUTO \
    SYNC_RATE_LIMIT SYNC_LANGUAGES SYNC_REVIEW_COUNT SYNC_MAX_CHANGE_RATIO SYNC_MAX_CONSECUTIVE_FAILURES \
    SYNC_SCHEMA_POLICY SYNC_MAX_RUN_SECONDS SYNC_DEADLINE_MARGIN_SECONDS \
    SYNC_LEASE_SECONDS SYNC_TOUCH_UNCHANGED CUPID_TIMEOUT_SECONDS; do
    [[ -n ${!v:-} ]] && echo "$v=${!v}" >>"$STATE/watch.env"
  done
  return 0
}

start_watch() {
  port_open "$WATCH_PORT" && { log "port $WATCH_PORT is busy; stop what holds it"; exit 1; }
  write_env
  # `make run` reloads a function when its code changes; the test stacks run what was built
  # (WATCH_RELOAD=0), so an edit made while a suite runs cannot restart a function mid-test.
  local reload=()
  [[ ${WATCH_RELOAD:-1} == 0 ]] && reload=(--ignore-changes)
  PATH="$VENV/bin:$PATH" start_bg watch cargo lambda watch -A 127.0.0.1 -P "$WATCH_PORT" --env-file "$STATE/watch.env" --timeout "${WATCH_TIMEOUT:-900}" "${reload[@]}"
  wait_port "$WATCH_PORT" watch 120
}

api() { # method path [body]
  curl -sS -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "http://127.0.0.1:$WATCH_PORT$2"
}

# A stack on its own ports and fresh table names, so it never touches `make run`'s data.
isolated_stack() {
  local tag="t$$"
  export PROPERTIES_TABLE=$tag-properties DOCUMENTS_TABLE=$tag-documents SYNC_LOGS_TABLE=$tag-logs SETTINGS_TABLE=$tag-settings
  export SCHEDULE_NAME=$tag-schedule EVENT_BUS_NAME=$tag-bus SYNC_RATE_LIMIT=${SYNC_RATE_LIMIT:-50}
  WATCH_RELOAD=0
  cargo build --workspace --quiet
  start_moto
  start_sim
  "$ROOT/target/debug/devstack" bootstrap tests/fixtures/hotel_ids.txt
  start_watch
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$WATCH_PORT/api/v1/health" >/dev/null 2>&1 && break
    sleep 0.5
  done
  warm_functions
}

# Watch starts a function on its first request, and has been seen to fail or lose that first
# request: start each HTTP function with a harmless read before anyone sends theirs.
warm_functions() {
  local p
  for p in /api/v1/admin/sync/status /api/v1/admin/sync/health /api/v1/admin/sync/logs \
    /api/v1/admin/sync/settings /api/v1/admin/quarantine /docs/swagger.json; do
    curl -s -o /dev/null --max-time 60 -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$WATCH_PORT$p" || true
  done
  # The trigger function, with a body it refuses (400, nothing written or started).
  curl -s -o /dev/null --max-time 60 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' --data '{"hotel_ids":[]}' "http://127.0.0.1:$WATCH_PORT/api/v1/admin/sync" || true
}

case "${1:-}" in
  run)
    log "building the workspace (the first build compiles the AWS SDK: ~6 min on 2 cores; progress below)"
    cargo build --workspace
    start_moto
    start_sim
    "$ROOT/target/debug/devstack" bootstrap tests/fixtures/hotel_ids.txt
    start_watch
    log "waiting for the API (first request compiles nothing: the workspace is built)"
    for _ in $(seq 1 300); do
      curl -sf "http://127.0.0.1:$WATCH_PORT/api/v1/health" >/dev/null 2>&1 && break
      sleep 0.5
    done
    warm_functions
    log "first sync: $(api POST /api/v1/admin/sync)"
    cat <<MSG

cupid-sync is running locally (Ctrl-C stops everything):
  API          http://localhost:$WATCH_PORT/api/v1/health
  status       curl -H 'Authorization: Bearer $ADMIN_TOKEN' http://localhost:$WATCH_PORT/api/v1/admin/sync/status
  console      http://localhost:$WATCH_PORT/console   (sign in with the admin token)
  docs         http://localhost:$WATCH_PORT/docs
  admin token  $ADMIN_TOKEN
  Cupid        $CUPID_BASE_URL
  AWS (moto)   $AWS_ENDPOINT_URL
  logs         $STATE/*.log   (make logs)
MSG
    wait
    ;;
  test)
    start_moto
    shift
    "$@"
    ;;
  e2e)
    isolated_stack
    if ! command -v chromium >/dev/null; then
      if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing Debian's chromium for the Swagger UI check"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >"$STATE/apt.log" 2>&1 || log "chromium install failed: $STATE/apt.log"
      fi
    fi
    status=0
    E2E_WATCH_LOG="$STATE/watch.log" "$ROOT/target/debug/e2e" "http://127.0.0.1:$WATCH_PORT" "$ADMIN_TOKEN" "http://127.0.0.1:$SIM_PORT" || status=$?
    if [[ $status != 0 ]]; then
      log "e2e failed; the functions' errors and warnings (whole log: $STATE/watch.log):"
      grep -E '"level":"(ERROR|WARN)"|panicked|ERROR|error:' "$STATE/watch.log" | tail -40 || true
    fi
    stop_all
    for port in "$SIM_PORT" "$WATCH_PORT"; do
      if port_open "$port"; then log "port $port still open after stop"; status=1; fi
    done
    exit $status
    ;;
  reads)
    # Admin reads at scale (make bench-reads): an isolated stack, then `bench reads` seeds N
    # records and 5,000 runs into its tables and times status / health / logs through watch.
    isolated_stack
    status=0
    BENCH=${BENCH:-$ROOT/target/debug/bench}
    "$BENCH" reads "http://127.0.0.1:$WATCH_PORT" "$ADMIN_TOKEN" ${BENCH_OUT:+--markdown "$BENCH_OUT"} || status=$?
    stop_all
    exit $status
    ;;
  fuzz)
    # schemathesis against the OpenAPI document, on a stack of its own. Requests go through
    # `apigw` (an API Gateway stand-in in front of the same handler; see its doc comment);
    # syncs the fuzzer starts still run in the real sync function under watch.
    isolated_stack
    FUZZ_VENV=$ROOT/.local/fuzz-venv
    if [[ ! -x $FUZZ_VENV/bin/schemathesis ]]; then
      python3 -m venv "$FUZZ_VENV"
      "$FUZZ_VENV/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
    fi
    APIGW_PORT=${APIGW_PORT:-18280}
    rm -rf "$STATE/fuzz"
    write_env
    AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$WATCH_PORT SYNC_DISPATCH=detached \
      start_bg apigw "$ROOT/target/debug/apigw" --port "$APIGW_PORT"
    wait_port "$APIGW_PORT" apigw 30
    status=0
    "$FUZZ_VENV/bin/schemathesis" run "http://127.0.0.1:$APIGW_PORT/docs/swagger.json" \
      --url "http://127.0.0.1:$APIGW_PORT" -H "Authorization: Bearer $ADMIN_TOKEN" \
      --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
      --max-examples "${FUZZ_EXAMPLES:-200}" --workers 1 \
      --request-timeout 30 --seed 42 --report junit --report-dir "$STATE/fuzz" || status=$?
    python3 - "$STATE"/fuzz/junit*.xml <<'PY' || true
import sys, xml.etree.ElementTree as ET
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    tests = sum(int(s.attrib.get("tests", 0)) for s in suites)
    failures = sum(int(s.attrib.get("failures", 0)) for s in suites)
    print(f"fuzz report {path}: {tests} operations, {failures} failing")
PY
    total=$(grep -c '^request ' "$STATE/apigw.log" || true)
    server_errors=$(grep -cE '^request .* 5[0-9][0-9]$' "$STATE/apigw.log" || true)
    log "api-fuzz: $total requests reached the API, $server_errors answered 5xx"
    grep -E '^request .* 5[0-9][0-9]$' "$STATE/apigw.log" | sort | uniq -c | head -20 >&2 || true
    [[ $server_errors == 0 ]] || status=1
    stop_all
    exit $status
    ;;
  *)
    echo "usage: tests/stack.sh run | test <command...> | e2e | reads | fuzz" >&2
    exit 2
    ;;
esac
