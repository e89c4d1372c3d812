#!/usr/bin/env bash
# Put a backup (a `pg_dump --format=custom` file, e.g. from `nix run .#backup`) back into
# the cluster's database:
#   1. says what it replaces (database, row counts, schema version) and asks, unless --yes;
#   2. stops writes: scales the app Deployment to 0 and waits until its pods are gone;
#   3. restores in ONE transaction: the schema `public` is dropped and re-created and the
#      dump loaded, or (on any error) nothing changes;
#   4. re-runs the migrations (a copy of the release's migrate Job), so a dump from an
#      older schema version comes out current;
#   5. scales the app back; its pods start fresh and load the restored greeting before
#      they report Ready, and each Ready pod is asked for GET / to prove it.
# If a step fails after 2., the app is scaled back before the script exits.
#
# Usage: restore.sh [--yes] FILE
# Settings: GREETER_CLUSTER, GREETER_NAMESPACE, GREETER_RELEASE (greeter),
# GREETER_RESTORE_TIMEOUT (900 seconds per wait).
set -euo pipefail
if ! declare -F say >/dev/null; then
  # shellcheck source=nix/apps/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

usage="usage: nix run .#restore -- [--yes] FILE   (FILE: a pg_dump --format=custom file, e.g. backups/greeter-20260102T030000Z.dump)"
yes=
file=
for arg in "$@"; do
  case $arg in
    --yes | -y) yes=1 ;;
    -h | --help) printf '%s\n' "$usage"; exit 0 ;;
    -*) die "unknown option $arg; $usage" ;;
    *) [[ -z $file ]] || die "one FILE only; $usage"; file=$arg ;;
  esac
done
[[ -n $file ]] || die "no FILE given; $usage"
[[ -f $file && -r $file ]] || die "$file: no such readable file"
# pg_dump's custom format starts with "PGDMP"; anything else would fail inside the pod.
[[ $(head -c 5 "$file") == PGDMP ]] || die "$file is not a pg_dump --format=custom file (no PGDMP header); plain SQL dumps are restored with psql"

release=${GREETER_RELEASE:-greeter}
timeout=${GREETER_RESTORE_TIMEOUT:-900}
app=$release
k() { kubectl --context "$context" -n "$namespace" "$@"; }

require_cluster

# Where the database runs, and how to reach it from inside its pod: the bundled
# StatefulSet (its superuser is POSTGRES_USER, the owner) or a CloudNativePG primary
# (local superuser postgres; the objects go to the application owner).
if k get statefulset "$release-postgresql" >/dev/null 2>&1; then
  pod=$release-postgresql-0
  container=postgresql
  env_of() { k get statefulset "$release-postgresql" -o jsonpath="{.spec.template.spec.containers[0].env[?(@.name==\"$1\")].value}"; }
  db=$(env_of POSTGRES_DB) || die "could not read POSTGRES_DB of statefulset/$release-postgresql"
  owner=$(env_of POSTGRES_USER) || die "could not read POSTGRES_USER of statefulset/$release-postgresql"
  superuser=$owner
elif k get clusters.postgresql.cnpg.io "$release-db" >/dev/null 2>&1; then
  pod=$(k get pods -l "cnpg.io/cluster=$release-db,cnpg.io/instanceRole=primary" -o jsonpath='{.items[0].metadata.name}') \
    || die "could not find the primary of the CloudNativePG cluster $release-db"
  container=postgres
  db=$(k get clusters.postgresql.cnpg.io "$release-db" -o jsonpath='{.spec.bootstrap.initdb.database}') || die "could not read cluster/$release-db"
  owner=$(k get clusters.postgresql.cnpg.io "$release-db" -o jsonpath='{.spec.bootstrap.initdb.owner}') || die "could not read cluster/$release-db"
  superuser=postgres
else
  die "neither statefulset/$release-postgresql nor a CloudNativePG cluster $release-db in namespace $namespace: nothing to restore into (an external database is restored with its provider's tools)"
fi
[[ -n $pod && -n $db && -n $owner ]] || die "could not work out the database pod, name and owner in namespace $namespace"

psql_in_pod() { k exec "$pod" -c "$container" -- psql -X -qAt -v ON_ERROR_STOP=1 -U "$superuser" -d "$db" "$@"; }

# 1. What is there now.
current=$(psql_in_pod -c "SELECT
    (SELECT count(*) FROM pg_tables WHERE schemaname = 'public') || ' tables, ' ||
    coalesce((SELECT count(*) FROM public.users)::text, '?') || ' users, ' ||
    coalesce((SELECT count(*) FROM public.admin_audit_log)::text, '?') || ' audit entries, schema version ' ||
    coalesce((SELECT max(version)::text FROM public.refinery_schema_history), 'none')" 2>/dev/null) \
  || current="(could not be read: the schema may be empty or broken)"
replicas=$(k get deployment "$app" -o jsonpath='{.spec.replicas}') || die "no deployment/$app in namespace $namespace"
size=$(wc -c <"$file" | tr -d ' ')
cat >&2 <<PLAN
This REPLACES the database '$db' in pod $namespace/$pod (context $context):
  now:      $current
  with:     $file ($size bytes)
  meanwhile the app (deployment/$app, $replicas replicas) is scaled to 0: no requests
  are served until the restore, the migrations and the restart are done.
PLAN
if [[ -z $yes ]]; then
  [[ -t 0 ]] || die "stdin is not a terminal, so I cannot ask; pass --yes to restore without asking"
  read -r -p "Restore $file into '$db'? Type yes to go on: " answer
  [[ $answer == yes ]] || die "not confirmed; nothing was changed"
fi

# 2. Stop writes. From here on, any exit brings the app back.
restore_app() {
  local status=$?
  if ((status != 0)); then
    warn "restore failed; scaling deployment/$app back to $replicas"
    k scale deployment "$app" --replicas="$replicas" >&2 || warn "could not scale deployment/$app back to $replicas: do it by hand"
  fi
}
trap restore_app EXIT
say "stopping writes: scaling deployment/$app from $replicas to 0"
k scale deployment "$app" --replicas=0 >&2 || die "could not scale deployment/$app to 0"
app_selector="app.kubernetes.io/instance=$release,app.kubernetes.io/component=app"
# (kubectl wait with a selector that matches nothing is an error in some versions.)
if [[ -n $(k get pods -l "$app_selector" -o name) ]]; then
  k wait --for=delete pod -l "$app_selector" --timeout="${timeout}s" >&2 \
    || die "the app pods did not stop within ${timeout}s"
fi

# 3. One transaction: psql reads BEGIN, the drop, the dump as SQL, and COMMIT only if
# pg_restore succeeded; otherwise an error statement ends psql (ON_ERROR_STOP) and the
# server rolls everything back. --clean would drop only the dump's own objects, so an
# older dump would leave newer tables (and their foreign keys) behind; dropping the
# schema gives exactly the dump. --no-owner/--no-privileges + SET ROLE: the objects
# belong to the application owner, as the migrations made them.
# psql's exit status alone does not prove the restore: if pg_restore dies inside
# `COPY ... FROM stdin`, psql reads the guard line as one more row of data and, at the
# end of its input, ends the COPY and exits 0 (nothing committed). So after COMMIT psql
# prints a marker, and only a last line equal to it counts as restored. (No pipefail:
# the Debian postgres images' sh is dash.)
# shellcheck disable=SC2016 # expanded by the pod's shell
in_pod='set -eu
owner=$1
marker="greeter-restore: committed"
out=$({
  echo "BEGIN;"
  printf "SET ROLE \"%s\";\n" "$owner"
  echo "DROP SCHEMA IF EXISTS public CASCADE;"
  echo "CREATE SCHEMA public;"
  if pg_restore --no-owner --no-privileges --exit-on-error --file=-; then
    echo "COMMIT;"
    echo "SELECT '"'"'$marker'"'"';"
  else
    echo "pg_restore failed: nothing was changed" >&2
    echo "DO \$\$ BEGIN RAISE EXCEPTION '"'"'pg_restore failed: nothing was changed'"'"'; END \$\$;"
  fi
} | psql -X -qAt -v ON_ERROR_STOP=1 -U "$2" -d "$3")
[ "${out##*
}" = "$marker" ] || { echo "the restore was not committed" >&2; exit 1; }'
say "restoring $file into '$db' in one transaction"
k exec -i "$pod" -c "$container" -- sh -c "$in_pod" restore "$owner" "$superuser" "$db" <"$file" >&2 \
  || die "the restore failed and was rolled back: the database is as it was before"
restored=$(psql_in_pod -c "SELECT coalesce(max(version)::text, 'none') FROM public.refinery_schema_history") \
  || die "the restored database has no refinery_schema_history: is $file a greeter backup?"
say "restored (schema version $restored in the dump)"

# 4. Migrations: a copy of the newest migrate Job of the release (same image, env, CA).
source_job=$(k get jobs -l "app.kubernetes.io/instance=$release,app.kubernetes.io/component=migrate" \
  --sort-by=.metadata.creationTimestamp -o jsonpath='{.items[-1:].metadata.name}') || die "could not list the migrate Jobs"
[[ -n $source_job ]] || die "no migrate Job of release $release in namespace $namespace (helm upgrade re-creates it)"
migrate_job=$release-migrate-restore-$(date -u +%Y%m%d%H%M%S)
say "running the migrations: Job $migrate_job (a copy of $source_job)"
k get job "$source_job" -o json \
  | jq --arg name "$migrate_job" '
      del(.status, .spec.selector, .spec.manualSelector)
      | .metadata = {name: $name, labels: (.metadata.labels | with_entries(select(.key | test("controller-uid|job-name") | not)))}
      | .spec.template.metadata.labels |= with_entries(select(.key | test("controller-uid|job-name") | not))' \
  | k create -f - >&2 || die "could not create the Job $migrate_job"
k wait --for=condition=Complete "job/$migrate_job" --timeout="${timeout}s" >&2 || {
  k logs "job/$migrate_job" --tail=50 >&2 || true
  die "the migrations did not complete (Job $migrate_job; its log is above)"
}
version=$(psql_in_pod -c "SELECT max(version) FROM public.refinery_schema_history") || die "could not read the schema version"
say "schema version $restored -> $version"

# 5. The app again. New pods load the greeting at start and are Ready only then.
say "scaling deployment/$app back to $replicas"
k scale deployment "$app" --replicas="$replicas" >&2 || die "could not scale deployment/$app back to $replicas"
trap - EXIT
k rollout status "deployment/$app" --timeout="${timeout}s" >&2 || die "deployment/$app did not become ready again"
expected=$(psql_in_pod -c "SELECT message FROM public.greetings WHERE is_active LIMIT 1") || die "could not read the active greeting"
port=$(k get deployment "$app" -o jsonpath='{.spec.template.spec.containers[0].ports[?(@.name=="http")].containerPort}') \
  || die "could not read the app's http port"
pods=$(k get pods -l "$app_selector" \
  --field-selector=status.phase=Running -o jsonpath='{.items[*].metadata.name}') || die "could not list the app pods"
[[ -n $pods ]] || die "no app pod is running after the restore"
for p in $pods; do
  body=$(k get --raw "/api/v1/namespaces/$namespace/pods/$p:$port/proxy/") || die "GET / on pod $p failed"
  got=$(jq -r .message <<<"$body") || die "GET / on pod $p did not answer JSON: $body"
  [[ $got == "$expected" ]] || die "pod $p serves '$got', not the restored greeting '$expected'"
  say "pod $p serves the restored greeting"
done
say "restore done: '$db' now holds $file at schema version $version; the app is back with $replicas replicas"
