{{/*
Expand the name of the chart.
*/}}
{{- define "greeter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "greeter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "greeter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "greeter.labels" -}}
helm.sh/chart: {{ include "greeter.chart" . }}
{{ include "greeter.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: greeter
{{- end }}

{{/*
Selector labels
*/}}
{{- define "greeter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "greeter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-component labels. Call with (dict "ctx" $ "component" "app").
Selectors always include the component, so the app Service never selects the
migration Job, the database or the test pod.
*/}}
{{- define "greeter.componentLabels" -}}
{{ include "greeter.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "greeter.componentSelectorLabels" -}}
{{ include "greeter.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "greeter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "greeter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image references. A digest pins by content and wins over the tag.
Call with (dict "image" .Values.image "default" .Chart.AppVersion).
*/}}
{{- define "greeter.imageRef" -}}
{{- if .image.digest -}}
{{ .image.repository }}@{{ .image.digest }}
{{- else -}}
{{ .image.repository }}:{{ .image.tag | default .default }}
{{- end -}}
{{- end }}

{{/* Names of the other objects. */}}
{{- define "greeter.migrateJobName" -}}
{{- printf "%s-migrate-%d" (include "greeter.fullname" . | trunc 50 | trimSuffix "-") (int .Release.Revision) }}
{{- end }}

{{- define "greeter.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "greeter.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}

{{- define "greeter.metricsServiceName" -}}
{{- printf "%s-metrics" (include "greeter.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The app Secret: the chart's own, or the user's existing one. */}}
{{- define "greeter.appSecretName" -}}
{{- .Values.secrets.existingSecret | default (include "greeter.fullname" .) }}
{{- end }}

{{/*
Where the database comes from: bundled | cloudnativepg | external. postgresql.enabled=false
is the older spelling of external.
*/}}
{{- define "greeter.postgresMode" -}}
{{- if .Values.postgresql.enabled -}}
{{ .Values.postgresql.mode }}
{{- else if eq .Values.postgresql.mode "cloudnativepg" -}}
{{ fail "postgresql.enabled=false (an external database) contradicts postgresql.mode=cloudnativepg; set postgresql.mode only (bundled, cloudnativepg or external)" }}
{{- else -}}
external
{{- end -}}
{{- end }}

{{- define "greeter.bundled" -}}{{ if eq (include "greeter.postgresMode" .) "bundled" }}true{{ end }}{{- end }}
{{- define "greeter.cnpg" -}}{{ if eq (include "greeter.postgresMode" .) "cloudnativepg" }}true{{ end }}{{- end }}

{{/* The CloudNativePG Cluster and what the operator names after it. */}}
{{- define "greeter.cnpg.clusterName" -}}
{{- printf "%s-db" (include "greeter.fullname" . | trunc 40 | trimSuffix "-") }}
{{- end }}

{{/*
Database connection. The bundled PostgreSQL or the external one (rendered into the
ConfigMap); with CloudNativePG the operator's `<cluster>-app` Secret has them all.
*/}}
{{- define "greeter.databaseHost" -}}
{{- if include "greeter.bundled" . -}}
{{ include "greeter.postgresql.fullname" . }}
{{- else -}}
{{ required "externalDatabase.host is required when postgresql.mode=external" .Values.externalDatabase.host }}
{{- end -}}
{{- end }}

{{- define "greeter.databasePort" -}}
{{- if include "greeter.bundled" . -}}5432{{- else -}}{{ .Values.externalDatabase.port }}{{- end -}}
{{- end }}

{{- define "greeter.databaseName" -}}
{{- if include "greeter.bundled" . -}}{{ .Values.postgresql.auth.database }}{{- else -}}{{ .Values.externalDatabase.database }}{{- end -}}
{{- end }}

{{- define "greeter.databaseUser" -}}
{{- if include "greeter.bundled" . -}}{{ .Values.postgresql.auth.username }}{{- else -}}{{ .Values.externalDatabase.username }}{{- end -}}
{{- end }}

{{/*
The bundled database has no TLS; it is reachable only from this release's pods.
CloudNativePG serves TLS with its own CA, which the app verifies (greeter.caBundle).
*/}}
{{- define "greeter.databaseSSLMode" -}}
{{- $mode := include "greeter.postgresMode" . -}}
{{- if eq $mode "bundled" -}}disable{{- else if eq $mode "cloudnativepg" -}}require{{- else -}}{{ .Values.externalDatabase.sslMode }}{{- end -}}
{{- end }}

{{- define "greeter.databaseSecretName" -}}
{{- $mode := include "greeter.postgresMode" . -}}
{{- if eq $mode "bundled" -}}
{{ .Values.postgresql.auth.existingSecret | default (include "greeter.postgresql.fullname" .) }}
{{- else if eq $mode "cloudnativepg" -}}
{{ include "greeter.cnpg.clusterName" . }}-app
{{- else -}}
{{ required "externalDatabase.existingSecret is required when postgresql.mode=external" .Values.externalDatabase.existingSecret }}
{{- end -}}
{{- end }}

{{- define "greeter.databaseSecretKey" -}}
{{- $mode := include "greeter.postgresMode" . -}}
{{- if eq $mode "bundled" -}}
{{- if .Values.postgresql.auth.existingSecret -}}{{ .Values.postgresql.auth.existingSecretPasswordKey }}{{- else -}}password{{- end -}}
{{- else if eq $mode "cloudnativepg" -}}
password
{{- else -}}
{{ .Values.externalDatabase.existingSecretPasswordKey }}
{{- end -}}
{{- end }}

{{/*
The CA that verifies the database's certificate: the operator's `<cluster>-ca` Secret
with CloudNativePG, else externalDatabase.caBundle. A dict (secretName, configMapName, key).
*/}}
{{- define "greeter.caBundle" -}}
{{- if include "greeter.cnpg" . -}}
{{- dict "secretName" (printf "%s-ca" (include "greeter.cnpg.clusterName" .)) "configMapName" "" "key" "ca.crt" | toJson -}}
{{- else -}}
{{- .Values.externalDatabase.caBundle | toJson -}}
{{- end -}}
{{- end }}

{{/*
Env shared by every container that talks to the database (the app, the init gate and
the migration Job). Non-secret settings come from the ConfigMap via envFrom.
*/}}
{{- define "greeter.databasePasswordEnv" -}}
{{- if include "greeter.cnpg" . }}
# The operator's Secret: host (<cluster>-rw), port, dbname, username (the owner).
{{- range $var, $key := dict "DATABASE_HOST" "host" "DATABASE_PORT" "port" "DATABASE_NAME" "dbname" "DATABASE_USER" "username" }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ include "greeter.databaseSecretName" $ }}
      key: {{ $key }}
{{- end }}
{{- end }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "greeter.databaseSecretName" . }}
      key: {{ include "greeter.databaseSecretKey" . }}
{{- with (include "greeter.caBundle" . | fromJson) }}
{{- if or .secretName .configMapName }}
# The provider's CA instead of the image's bundle (rustls-native-certs reads only
# SSL_CERT_FILE when it is set).
- name: SSL_CERT_FILE
  value: /etc/greeter/database-ca/{{ .key }}
{{- end }}
{{- end }}
{{- end }}

{{/* The CA bundle's mount and volume, for the app, the init gate and the Job. */}}
{{- define "greeter.caMount" -}}
{{- with (include "greeter.caBundle" . | fromJson) }}{{- if or .secretName .configMapName }}
- name: database-ca
  mountPath: /etc/greeter/database-ca
  readOnly: true
{{- end }}{{- end }}
{{- end }}

{{- define "greeter.caVolume" -}}
{{- with (include "greeter.caBundle" . | fromJson) }}
{{- if and .secretName .configMapName }}
{{- fail "externalDatabase.caBundle: set secretName or configMapName, not both" }}
{{- end }}
{{- if .secretName }}
- name: database-ca
  secret:
    secretName: {{ .secretName }}
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- else if .configMapName }}
- name: database-ca
  configMap:
    name: {{ .configMapName }}
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Restricted Pod Security profile, for every container.
*/}}
{{- define "greeter.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod-level security context for the greeter images (UID/GID 65532). */}}
{{- define "greeter.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
NetworkPolicy egress rule towards the database: the in-cluster PostgreSQL pods, or the
external database's port (restricted to networkPolicy.externalDatabaseCIDRs if given).
*/}}
{{- define "greeter.databaseEgress" -}}
{{- $mode := include "greeter.postgresMode" . -}}
{{- if eq $mode "bundled" -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "greeter.componentSelectorLabels" (dict "ctx" $ "component" "database") | nindent 10 }}
  ports:
    - protocol: TCP
      port: 5432
{{- else if eq $mode "cloudnativepg" -}}
- to:
    - podSelector:
        matchLabels:
          cnpg.io/cluster: {{ include "greeter.cnpg.clusterName" . }}
  ports:
    - protocol: TCP
      port: 5432
{{- else -}}
- ports:
    - protocol: TCP
      port: {{ .Values.externalDatabase.port }}
  {{- with .Values.networkPolicy.externalDatabaseCIDRs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end -}}
{{- end }}

{{/*
checksum/secret for the app pods: which Secrets and keys they read — never a value (the
chart knows none: they live outside the release, see secrets-job.yaml). A rotation is a
change of the Secret itself, so it is followed by `kubectl rollout restart` (DOCS.md).
*/}}
{{- define "greeter.secretsChecksum" -}}
{{- $inputs := dict
      "appSecret" (include "greeter.appSecretName" .)
      "databaseSecret" (include "greeter.databaseSecretName" .)
      "databaseSecretKey" (include "greeter.databaseSecretKey" .) -}}
{{- toJson $inputs | sha256sum -}}
{{- end }}

{{/*
Secret values are never taken from values: they would be stored in every release
revision and `helm rollback` would bring an old one back. An explicit
postgresql.auth.password may only confirm the stored one (lookup); any other value
fails, because the postgres image applies POSTGRES_PASSWORD only to an empty data
directory and the rollout would hang on authentication errors.
*/}}
{{- define "greeter.validateSecretValues" -}}
{{- range $key := list "secretKey" "paymentApiKey" "adminPassword" }}
{{- if index $.Values.secrets $key }}
{{- fail (printf "secrets.%s: secret values are not taken from values (every release revision would store it, and a rollback would restore an old one). The chart generates the Secret %s once; rotate with kubectl patch as in DOCS.md#secrets-and-rotation, or point secrets.existingSecret at your own Secret." $key (include "greeter.appSecretName" $)) }}
{{- end }}
{{- end }}
{{- with .Values.postgresql.auth.password }}
{{- if not (include "greeter.bundled" $) }}
{{- fail "postgresql.auth.password applies to the bundled PostgreSQL only (postgresql.mode=bundled); an external database's password is in externalDatabase.existingSecret, CloudNativePG generates its own" }}
{{- end }}
{{- $name := include "greeter.databaseSecretName" $ }}
{{- $key := include "greeter.databaseSecretKey" $ }}
{{- $live := lookup "v1" "Secret" $.Release.Namespace $name }}
{{- $stored := index ($live.data | default dict) $key }}
{{- if not $stored }}
{{- fail (printf "postgresql.auth.password is set, but the Secret %s (key %s) does not exist (or this is a client-side render, where lookup sees nothing). The chart takes no passwords from values: leave postgresql.auth.password empty and the password is generated, or create the Secret yourself before installing (kubectl -n %s create secret generic %s --from-literal=%s=...)." $name $key $.Release.Namespace $name $key) }}
{{- end }}
{{- if ne (b64dec $stored) (toString .) }}
{{- fail (printf "postgresql.auth.password differs from the password in the Secret %s, the one PostgreSQL was initialised with. Changing it here would not change it in PostgreSQL and the pods could no longer log in. Rotate it with ALTER ROLE and kubectl patch as in DOCS.md#secrets-and-rotation, then remove postgresql.auth.password from your values." $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The connection budget: every app pod PostgreSQL may see at once — the HPA's maximum (or
replicaCount) plus the rolling update's surge, each with its pool and the LISTEN
connection (the init gate's one connection comes before the app's) — plus the migrate
Job (1) and a reserve for operators (psql) and superuser_reserved_connections (3).
*/}}
{{- define "greeter.connectionBudget" -}}
{{- $replicas := ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled | int }}
{{- $surge := .Values.rollingUpdate.maxSurge | toString }}
{{- $surgePods := 0 }}
{{- if hasSuffix "%" $surge }}
{{- $pct := trimSuffix "%" $surge | int }}
{{- /* Kubernetes rounds a percentage surge up. */}}
{{- $surgePods = div (add (mul $replicas $pct) 99) 100 }}
{{- else }}
{{- $surgePods = int $surge }}
{{- end }}
{{- $pool := .Values.config.databasePoolMax | default 16 | int }}
{{- add (mul (add $replicas $surgePods) (add $pool 1)) 1 8 }}
{{- end }}

{{/* The backup CronJob, its PVC and its image (pg_dump of the server's major version). */}}
{{- define "greeter.backupName" -}}
{{- printf "%s-backups" (include "greeter.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "greeter.backupImage" -}}
{{- if include "greeter.cnpg" . -}}
{{ .Values.cloudnativepg.imageName }}
{{- else -}}
{{ include "greeter.imageRef" (dict "image" .Values.postgresql.image "default" "") }}
{{- end -}}
{{- end }}

