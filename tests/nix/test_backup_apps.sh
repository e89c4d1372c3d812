#!/usr/bin/env bash
# nix/apps/backup.sh and restore.sh as `nix run` runs them (tests/nix/assemble_app.sh),
# against the fake kubectl of tests/nix/fake_kubectl.sh and a fake kind: the refusals and
# failure paths (no cluster needed, no database needed). The happy paths, with a real
# PostgreSQL and the real binaries, are tests/chart/test_backup_roundtrip.py.
# Prints ok/FAIL per case; non-zero exit on any failure.
# shellcheck disable=SC2015 # `a && b || { report; }`: the report runs when any check fails
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=tests/nix/assemble_app.sh
source tests/nix/assemble_app.sh

passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); printf 'ok    %s\n' "$name"; else failed=$((failed + 1)); printf 'FAIL  %s\n' "$name"; fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/bin
mkdir -p "$bin"
ln -s "$PWD/tests/nix/fake_kubectl.sh" "$bin/kubectl"
# shellcheck disable=SC2016 # the fake's own $1 $2
printf '#!/bin/sh\n[ "$1 $2" = "get clusters" ] && echo greeter\n' >"$bin/kind"
printf '#!/bin/sh\nexit 1\n' >"$bin/docker"
chmod +x "$bin/kind" "$bin/docker"
for app in backup restore; do assemble_app "$app" "$bin" "$tmp/$app"; done

# A fresh fake cluster: bundled database, 2 app replicas, a CronJob whose script is $1.
world() {
  export FAKE_DIR=$tmp/world
  rm -rf "$FAKE_DIR" "$tmp/project"
  mkdir -p "$FAKE_DIR/pvc" "$tmp/project"
  echo bundled >"$FAKE_DIR/mode"
  echo greeter >"$FAKE_DIR/db"
  echo greeter >"$FAKE_DIR/owner"
  echo 2 >"$FAKE_DIR/replicas"
  # No PostgreSQL listens here: the pre-restore summary must cope with that.
  echo "PGHOST=127.0.0.1 PGPORT=1 PGPASSWORD=x PGCONNECT_TIMEOUT=2" >"$FAKE_DIR/pg.env"
  printf '%s\n' "${1:-exit 0}" >"$FAKE_DIR/cronjob.sh"
  echo "BACKUP_KEEP=3" >"$FAKE_DIR/cronjob.env"
  : >"$FAKE_DIR/log"
  printf 'PGDMP and then the rest of a dump\n' >"$tmp/project/good.dump"
}
out=$tmp/out
run() { (cd "$tmp/project" && PATH="$bin:$PATH" "$@") >"$out" 2>&1; }
calls() { cat "$FAKE_DIR/log"; }

restore_needs_a_file() {
  world
  ! run "$tmp/restore" --yes && grep -q 'no FILE given; usage: nix run .#restore -- \[--yes\] FILE' "$out" \
    && ! run "$tmp/restore" --yes missing.dump && grep -q 'missing.dump: no such readable file' "$out" \
    && ! grep -q scale "$FAKE_DIR/log" || { cat "$out"; return 1; }
}

restore_refuses_a_non_dump() {
  world
  echo "SELECT 1;" >"$tmp/project/plain.sql"
  ! run "$tmp/restore" --yes plain.sql && grep -q 'not a pg_dump --format=custom file' "$out" \
    && ! grep -q scale "$FAKE_DIR/log" || { cat "$out"; return 1; }
}

restore_asks_and_does_not_guess() {
  world
  # stdin is not a terminal: it says so and changes nothing.
  ! run "$tmp/restore" good.dump </dev/null && grep -q 'pass --yes' "$out" \
    && grep -q "This REPLACES the database 'greeter'" "$out" \
    && ! grep -q 'scale' "$FAKE_DIR/log" || { cat "$out"; calls; return 1; }
}

restore_failure_brings_the_app_back() {
  world
  FAKE_FAIL=exec-restore run "$tmp/restore" --yes good.dump
  local status=$?
  ((status != 0)) && grep -q 'the restore failed and was rolled back' "$out" \
    && grep -q 'scaling deployment/greeter back to 2' "$out" \
    && [[ $(cat "$FAKE_DIR/replicas") == 2 ]] \
    && [[ $(grep -c ' scale deployment greeter ' "$FAKE_DIR/log") == 2 ]] \
    && ! grep -q 'create -f -' "$FAKE_DIR/log" || { cat "$out"; calls; return 1; }
}

restore_without_a_database() {
  world
  echo none >"$FAKE_DIR/mode"
  ! run "$tmp/restore" --yes good.dump && grep -q 'nothing to restore into' "$out" || { cat "$out"; return 1; }
}

backup_without_cronjob() {
  world
  rm "$FAKE_DIR/cronjob.sh"
  ! run "$tmp/backup" && grep -q 'no CronJob greeter-backups in namespace greeter: deploy first' "$out" \
    || { cat "$out"; return 1; }
}

backup_job_failure_shows_its_log() {
  world 'echo "backup: FAILED: pg_dump exited with status 1" >&2; exit 1'
  ! run "$tmp/backup" && grep -q '| backup: FAILED: pg_dump exited with status 1' "$out" \
    && grep -q 'did not complete (Failed' "$out" \
    && [[ -z $(ls -A "$tmp/project/backups" 2>/dev/null) ]] || { cat "$out"; return 1; }
}

backup_copies_and_checks_the_size() {
  # shellcheck disable=SC2016 # expanded by the fake Job's shell
  world 'f="$BACKUP_DIR/greeter-20260102T030000Z.dump"; printf "PGDMP-data" >"$f"; echo "backup: wrote /backups/${f##*/} (10 bytes)"'
  run "$tmp/backup" && [[ $(cat "$tmp/project/backups/greeter-20260102T030000Z.dump") == PGDMP-data ]] \
    && grep -qx './backups/greeter-20260102T030000Z.dump 10' "$out" \
    && grep -q ' create job greeter-backups-now-[0-9]* --from=cronjob/greeter-backups' "$FAKE_DIR/log" \
    && grep -q ' delete pod greeter-backups-read-' "$FAKE_DIR/log" || { cat "$out"; calls; return 1; }
}

backup_reads_the_pod_that_wrote_after_a_failed_try() {
  # The first pod fails (after some noise), the retry writes the dump; `kubectl logs
  # job/X` would read only one pod (maybe the failed one) and a selector only its last
  # 10 lines without --tail=-1.
  # shellcheck disable=SC2016 # expanded by the fake Job's shell
  world 'if [ ! -e "$BACKUP_DIR/.tried" ]; then : >"$BACKUP_DIR/.tried"; echo "backup: FAILED: pg_dump exited with status 1" >&2; exit 1; fi
f="$BACKUP_DIR/greeter-20260102T030000Z.dump"; printf "PGDMP-data" >"$f"; echo "backup: wrote /backups/${f##*/} (10 bytes)"
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "backup: removed /backups/old-$i.dump"; done'
  run "$tmp/backup"
  local status=$? pods=("$FAKE_DIR"/jobs/*.pod-*.log)
  ((status == 0)) && [[ $(cat "$tmp/project/backups/greeter-20260102T030000Z.dump") == PGDMP-data ]] \
    && ((${#pods[@]} == 2)) \
    && grep -q ' logs -l job-name=greeter-backups-now-[0-9]* ' "$FAKE_DIR/log" || { cat "$out"; calls; return 1; }
}

backup_failed_copy_leaves_no_partial_file() {
  # shellcheck disable=SC2016 # expanded by the fake Job's shell
  world 'f="$BACKUP_DIR/greeter-20260102T030000Z.dump"; printf "PGDMP-data" >"$f"; echo "backup: wrote /backups/${f##*/} (10 bytes)"'
  ! FAKE_FAIL=copy run "$tmp/backup" && grep -q 'could not copy /backups/greeter-20260102T030000Z.dump' "$out" \
    && [[ -d $tmp/project/backups && -z $(ls -A "$tmp/project/backups") ]] \
    && grep -q ' delete pod greeter-backups-read-' "$FAKE_DIR/log" || { cat "$out"; ls -la "$tmp/project/backups"; return 1; }
}

restore_streams_stdin_only_into_the_restore() {
  world
  FAKE_FAIL=exec-restore run "$tmp/restore" --yes good.dump
  # psql -c reads no stdin: no -i (which would tie up or consume the caller's stdin).
  grep -q ' exec greeter-postgresql-0 -c postgresql -- psql .* -c ' "$FAKE_DIR/log" \
    && ! grep -q ' exec -i [^ ]* -c postgresql -- psql' "$FAKE_DIR/log" \
    && grep -q ' exec -i greeter-postgresql-0 -c postgresql -- sh -c ' "$FAKE_DIR/log" || { cat "$out"; calls; return 1; }
}

check "restore: no FILE or a missing one is refused before anything changes" restore_needs_a_file
check "restore: a file that is not a custom-format dump is refused" restore_refuses_a_non_dump
check "restore: without --yes and no terminal it shows the plan and stops" restore_asks_and_does_not_guess
check "restore: a failed restore says it was rolled back and scales the app back" restore_failure_brings_the_app_back
check "restore: no bundled or CloudNativePG database is a clear error" restore_without_a_database
check "backup: no CronJob is a clear error" backup_without_cronjob
check "backup: a failed Job fails the app and shows the Job's log" backup_job_failure_shows_its_log
check "backup: the file is copied out, its size checked, the reader pod deleted" backup_copies_and_checks_the_size
check "backup: after a failed try, the file is found in the log of the pod that wrote it" backup_reads_the_pod_that_wrote_after_a_failed_try
check "backup: a failed copy leaves no .partial file behind" backup_failed_copy_leaves_no_partial_file
check "restore: only the streaming restore gets stdin (exec -i); psql -c does not" restore_streams_stdin_only_into_the_restore

echo "test_backup_apps: $passed passed, $failed failed"
[[ $failed == 0 ]]
