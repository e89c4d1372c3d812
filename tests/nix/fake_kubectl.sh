#!/usr/bin/env bash
# A fake kubectl for nix/apps/backup.sh and restore.sh (installed as `kubectl` on PATH by
# tests/nix/test_backup_apps.sh and tests/chart/test_backup_roundtrip.py). It logs every
# call to $FAKE_DIR/log and plays a small cluster from files in $FAKE_DIR:
#   mode              bundled | cloudnativepg | (absent: no database objects)
#   db, owner         POSTGRES_DB / POSTGRES_USER of the bundled StatefulSet
#   pg.env            PGHOST=... PGPORT=... PGPASSWORD=...: the test PostgreSQL, which
#                     `kubectl exec` into the database pod reaches: the pod's command
#                     (pg_restore, psql, sh -c ...) runs HERE, for real, against it
#   cronjob.sh/.env   the backup CronJob's script and env (create job --from=cronjob/);
#   cronjob.backoff   its backoffLimit (default 1): a failed pod is retried that often
#   pvc/              the backup PVC (its BACKUP_DIR)
#   migrate-job.json  the release's migrate Job (get job -o json)
#   replicas          the Deployment's spec.replicas
#   hooks/scale N     run after `scale deployment`; hooks/migrate JSON after `create -f -`
#                     (prints Complete or Failed); they start/stop the real binaries
#   app-pods          the names of the running app pods; app-url.<pod> their base URL
# FAKE_FAIL="step ..." makes a step fail (steps: create-job, exec-restore, migrate, scale-up,
# copy: the reader pod's cat breaks off).
set -euo pipefail
d=$FAKE_DIR
printf 'kubectl %s\n' "$*" >>"$d/log"
fails() {
  local step
  for step in ${FAKE_FAIL:-}; do
    [[ $step == "$1" ]] && { echo "fake kubectl: $1 fails (FAKE_FAIL)" >&2; exit 1; }
  done
  return 0
}
# Drop the global flags; the scripts always pass both.
args=()
while (($#)); do
  case $1 in
    --context | -n) shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]}"
pg_env() { local kv vars; read -r -a vars <"$d/pg.env" || true; for kv in "${vars[@]}"; do export "${kv?}"; done; }
has() { local want=$1; shift; local a; for a in "$@"; do [[ $a == "$want"* ]] && return 0; done; return 1; }

case "$1 ${2:-}" in
  "get cronjob")
    [[ -f $d/cronjob.sh ]] || { echo "Error from server (NotFound): cronjobs \"$3\" not found" >&2; exit 1; }
    if has -o "$@"; then echo "postgres:test"; fi ;;
  "create job")
    fails create-job
    job=$3
    mkdir -p "$d/jobs" "$d/pvc"
    # The Job's pods: the CronJob's script with exactly its env (plus the PVC's path
    # here), retried like backoffLimit (cronjob.backoff, default the chart's 1): one log
    # per pod, jobs/$job.pod-N.log.
    read -r -a job_env <"$d/cronjob.env" || true
    echo "Failed " >"$d/jobs/$job.state"
    for ((try = 0; try <= $(cat "$d/cronjob.backoff" 2>/dev/null || echo 1); try++)); do
      if env -i PATH="$PATH" "${job_env[@]}" BACKUP_DIR="$d/pvc" sh -c "$(cat "$d/cronjob.sh")" >"$d/jobs/$job.pod-$try.log" 2>&1; then
        echo "Complete " >"$d/jobs/$job.state"
        break
      fi
    done
    echo "job.batch/$job created" ;;
  "get job")
    if has -ojson "$@" || [[ " $* " == *" -o json "* ]]; then cat "$d/migrate-job.json"; else cat "$d/jobs/$3.state"; fi ;;
  "get jobs") echo "greeter-migrate-1" ;;
  # job/NAME: like kubectl, ONE of the Job's pods (here the first, a failed try if there
  # was one); -l job-name=NAME: every pod's log (kubectl's default --tail=10 with a
  # selector is modelled too).
  "logs job/"*) cat "$d/jobs/${2#job/}.pod-0.log" ;;
  "logs -l")
    job=${3#job-name=}
    [[ $job != "$3" ]] || { echo "fake kubectl: logs -l $3: only job-name= is played" >&2; exit 2; }
    for f in "$d/jobs/$job".pod-*.log; do
      if has --tail=-1 "$@"; then cat "$f"; else tail -n 10 "$f"; fi
    done ;;
  "apply -f") cat >"$d/applied.yaml" ;;
  "wait --for=condition=Ready") ;;
  "wait --for=delete") ;;
  "wait --for=condition=Complete")
    job=${3#job/}
    [[ $(cat "$d/jobs/$job.state") == Complete* ]] ;;
  "delete "*) ;;
  "get statefulset")
    [[ $(cat "$d/mode" 2>/dev/null) == bundled ]] || { echo "Error from server (NotFound)" >&2; exit 1; }
    case "$*" in
      *POSTGRES_DB*) cat "$d/db" ;;
      *POSTGRES_USER*) cat "$d/owner" ;;
    esac ;;
  "get clusters.postgresql.cnpg.io")
    [[ $(cat "$d/mode" 2>/dev/null) == cloudnativepg ]] || { echo "Error from server (NotFound)" >&2; exit 1; }
    case "$*" in
      *initdb.database*) cat "$d/db" ;;
      *initdb.owner*) cat "$d/owner" ;;
    esac ;;
  "get deployment")
    [[ -f $d/replicas ]] || { echo "Error from server (NotFound)" >&2; exit 1; }
    case "$*" in
      *spec.replicas*) cat "$d/replicas" ;;
      *containerPort*) echo 8080 ;;
    esac ;;
  "get pods")
    case "$*" in
      *instanceRole=primary*) echo "greeter-db-1" ;;
      *) cat "$d/app-pods" 2>/dev/null || true ;;
    esac ;;
  "get --raw")
    # /api/v1/namespaces/NS/pods/POD:PORT/proxy/ -> the pod's own server
    pod=${3#*/pods/}
    pod=${pod%%:*}
    curl -sf "$(cat "$d/app-url.$pod")/" ;;
  "exec "*)
    # exec [-i] POD [-c C] -- CMD...: a reader pod reads the PVC; a database pod runs CMD here.
    shift
    [[ $1 == -i ]] && shift
    pod=$1
    while [[ $1 != -- ]]; do shift; done
    shift
    if [[ $pod == *-read-* ]]; then
      file=${!#}
      path=$d/pvc/${file#/backups/}
      case $1 in
        cat)
          # FAKE_FAIL=copy: the stream breaks after a few bytes.
          if [[ " ${FAKE_FAIL:-} " == *" copy "* ]]; then head -c 3 "$path"; echo "fake kubectl: copy fails (FAKE_FAIL)" >&2; exit 1; fi
          cat "$path" ;;
        wc) printf '%s %s\n' "$(wc -c <"$path" | tr -d ' ')" "$file" ;;
      esac
    else
      [[ $1 == sh ]] && fails exec-restore
      pg_env
      exec "$@"
    fi ;;
  "scale deployment")
    n=${4#--replicas=}
    ((n > 0)) && fails scale-up
    echo "$n" >"$d/replicas"
    if [[ -x $d/hooks/scale ]]; then "$d/hooks/scale" "$n" >>"$d/hooks.log" 2>&1; fi ;;
  "create -f")
    fails migrate
    json=$(cat)
    job=$(jq -r .metadata.name <<<"$json")
    printf '%s\n' "$json" >"$d/created-$job.json"
    mkdir -p "$d/jobs"
    if [[ -x $d/hooks/migrate ]]; then
      "$d/hooks/migrate" "$d/created-$job.json" >"$d/jobs/$job.state" 2>>"$d/hooks.log" || echo "Failed " >"$d/jobs/$job.state"
    else
      echo "Complete " >"$d/jobs/$job.state"
    fi
    echo "job.batch/$job created" ;;
  "rollout status") ;;
  *) echo "fake kubectl: unexpected call: $*" >&2; exit 2 ;;
esac
