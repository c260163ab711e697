#!/usr/bin/env bash
# `make sync-now`: start a sync, follow it with a progress bar, print the summary.
set -euo pipefail
API=${API:-http://localhost:8080}
AUTH=(-H "Authorization: Bearer ${ADMIN_TOKEN:?}" -H 'Content-Type: application/json')
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

resp=$(curl -sS -X POST "${AUTH[@]}" "$API/api/v1/admin/sync" ${BODY:+--data "$BODY"})
if [[ $(json "d['success']" <<<"$resp") != True ]]; then
  echo "$resp"
  exit 1
fi
sync_id=$(json "d['data']['sync_id']" <<<"$resp")
echo "sync $sync_id started (estimated $(json "d['data']['estimated_duration']" <<<"$resp"))"
while :; do
  status=$(curl -sS "${AUTH[@]}" "$API/api/v1/admin/sync/status")
  cur=$(json "d['data']['current_run'] or {}" <<<"$status")
  if [[ $cur == "{}" ]] || [[ $(json "(d['data']['current_run'] or {}).get('sync_id')" <<<"$status") != "$sync_id" ]]; then
    break
  fi
  done_n=$(json "d['data']['current_run']['processed']" <<<"$status")
  total=$(json "d['data']['current_run']['total']" <<<"$status")
  width=40
  filled=$(( total > 0 ? done_n * width / total : 0 ))
  printf '\r[%-*s] %s/%s' "$width" "$(printf '%*s' "$filled" '' | tr ' ' '#')" "$done_n" "$total"
  sleep 1
done
printf '\r%*s\r' 60 ''
summary=$(cat <<'PY'
import json, sys
d = json.load(sys.stdin)["data"]
print("sync %s: %s in %s" % (d["sync_id"], d["status"], d["duration"]))
print("  total %s, updated %s, unchanged %s, failed %s, not found %s" % (
    d["total_properties"], d["updated_properties"], d["unchanged_properties"], d["failed_properties"], d["not_found_properties"]))
for f in d["failures"][:10]:
    print("  failed %s: %s" % (f["hotel_id"], f["reason"]))
for c in d["changes"][:10]:
    print("  changed %s %s: %s" % (c["hotel_id"], c.get("facet", "property"), ", ".join(c["paths"])))
if d["error_message"]:
    print("  " + d["error_message"])
PY
)
curl -sS "${AUTH[@]}" "$API/api/v1/admin/sync/logs/$sync_id" | python3 -c "$summary"
