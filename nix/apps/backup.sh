#!/usr/bin/env bash
# Take a backup of the cluster's database now and copy it to ./backups/ on this machine.
# It runs the chart's backup CronJob once (`kubectl create job --from=cronjob/...`: the
# same pg_dump --format=custom, the same PVC, the same rotation), waits for it, then reads
# the new file out of the backup PVC through a short-lived pod and prints its path and
# size. Every run makes a new file (named by UTC time); nothing is overwritten.
#
# Settings: GREETER_CLUSTER (greeter), GREETER_NAMESPACE (greeter), GREETER_RELEASE
# (greeter), GREETER_BACKUP_DIR (./backups), GREETER_BACKUP_TIMEOUT (1800 seconds).
set -euo pipefail
if ! declare -F say >/dev/null; then
  # shellcheck source=nix/apps/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

release=${GREETER_RELEASE:-greeter}
cronjob=$release-backups
out_dir=${GREETER_BACKUP_DIR:-./backups}
timeout=${GREETER_BACKUP_TIMEOUT:-1800}
k() { kubectl --context "$context" -n "$namespace" "$@"; }

require_cluster
k get cronjob "$cronjob" >/dev/null 2>&1 \
  || die "no CronJob $cronjob in namespace $namespace: deploy first (nix run .#deploy), with backup.enabled=true and postgresql.mode bundled or cloudnativepg"

job=$cronjob-now-$(date -u +%Y%m%d%H%M%S)
say "running the backup now: Job $job from cronjob/$cronjob"
k create job "$job" --from="cronjob/$cronjob" >&2 || die "kubectl create job $job --from=cronjob/$cronjob failed"

# Complete or Failed, whichever comes first (the Job retries up to its backoffLimit).
state=
for ((waited = 0; waited < timeout; waited += 2)); do
  state=$(k get job "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}') \
    || die "could not read the status of Job $job"
  [[ $state == *Complete* || $state == *Failed* ]] && break
  sleep 2
done
# Every pod of the Job: `kubectl logs job/X` reads just one of them, which after a
# failed try may be the failed pod. (--tail=-1: with a selector kubectl shows only the
# last 10 lines of each pod by default.)
logs=$(k logs -l "job-name=$job" --tail=-1 2>&1) || logs="(no logs: $logs)"
if [[ $state != *Complete* ]]; then
  printf '%s\n' "$logs" | sed 's/^/  | /' >&2
  die "the backup Job $job did not complete (${state:-still running after ${timeout}s}); its log is above (kubectl -n $namespace describe job $job)"
fi
# (A try that wrote its file but then failed, e.g. in the rotation, leaves a complete
# dump too; the names sort by time, so this takes the newest.)
file=$(sed -n 's|^backup: wrote .*/\(greeter-[^/ ]*\.dump\) .*|\1|p' <<<"$logs" | sort | tail -n 1)
[[ -n $file ]] || die "the backup Job $job completed but did not say which file it wrote; its log: $logs"
say "the Job wrote $file into the PVC $cronjob"

# The file is in the PVC: read it through a pod that mounts it read-only (same image,
# same restricted security context as the backup itself).
image=$(k get cronjob "$cronjob" -o jsonpath='{.spec.jobTemplate.spec.template.spec.containers[0].image}') \
  || die "could not read the image of cronjob/$cronjob"
reader=$cronjob-read-$(date -u +%H%M%S)
dest=
# On any exit: the reader pod goes, and so does a half-copied file (a *.partial never
# stays in the backups directory).
cleanup() {
  [[ -z $dest ]] || rm -f "$dest.partial"
  k delete pod "$reader" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT
k apply -f - >&2 <<POD || die "could not create the pod $reader that reads the backup PVC"
apiVersion: v1
kind: Pod
metadata:
  name: $reader
  labels:
    app.kubernetes.io/name: greeter
    app.kubernetes.io/instance: $release
    app.kubernetes.io/component: backup-reader
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: reader
      image: $image
      command: ["sleep", "600"]
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        capabilities:
          drop: [ALL]
      volumeMounts:
        - name: backups
          mountPath: /backups
          readOnly: true
  volumes:
    - name: backups
      persistentVolumeClaim:
        claimName: $cronjob
        readOnly: true
POD
k wait --for=condition=Ready "pod/$reader" --timeout=180s >&2 \
  || die "the pod $reader (which mounts the PVC $cronjob) did not start"

mkdir -p "$out_dir" || die "could not create $out_dir"
dest=$out_dir/$file
k exec "$reader" -- cat "/backups/$file" >"$dest.partial" || die "could not copy /backups/$file out of the pod $reader"
expected=$(k exec "$reader" -- wc -c "/backups/$file") || die "could not read the size of /backups/$file"
expected=${expected%% *}
size=$(wc -c <"$dest.partial" | tr -d ' ')
[[ $size == "$expected" ]] || die "copied $size bytes of /backups/$file but it has $expected; the incomplete copy was removed"
mv "$dest.partial" "$dest"
k delete job "$job" --wait=false >/dev/null 2>&1 || warn "could not delete the finished Job $job"

say "backup copied: $dest ($size bytes)"
printf '%s %s\n' "$dest" "$size"
