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
Database connection. The in-cluster PostgreSQL or the external one.
*/}}
{{- define "greeter.databaseHost" -}}
{{- if .Values.postgresql.enabled -}}
{{ include "greeter.postgresql.fullname" . }}
{{- else -}}
{{ required "externalDatabase.host is required when postgresql.enabled=false" .Values.externalDatabase.host }}
{{- end -}}
{{- end }}

{{- define "greeter.databasePort" -}}
{{- if .Values.postgresql.enabled -}}5432{{- else -}}{{ .Values.externalDatabase.port }}{{- end -}}
{{- end }}

{{- define "greeter.databaseName" -}}
{{- if .Values.postgresql.enabled -}}{{ .Values.postgresql.auth.database }}{{- else -}}{{ .Values.externalDatabase.database }}{{- end -}}
{{- end }}

{{- define "greeter.databaseUser" -}}
{{- if .Values.postgresql.enabled -}}{{ .Values.postgresql.auth.username }}{{- else -}}{{ .Values.externalDatabase.username }}{{- end -}}
{{- end }}

{{/* The in-cluster database has no TLS; it is reachable only from this release's pods. */}}
{{- define "greeter.databaseSSLMode" -}}
{{- if .Values.postgresql.enabled -}}disable{{- else -}}{{ .Values.externalDatabase.sslMode }}{{- end -}}
{{- end }}

{{- define "greeter.databaseSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{ .Values.postgresql.auth.existingSecret | default (include "greeter.postgresql.fullname" .) }}
{{- else -}}
{{ required "externalDatabase.existingSecret is required when postgresql.enabled=false" .Values.externalDatabase.existingSecret }}
{{- end -}}
{{- end }}

{{- define "greeter.databaseSecretKey" -}}
{{- if .Values.postgresql.enabled -}}
{{- if .Values.postgresql.auth.existingSecret -}}{{ .Values.postgresql.auth.existingSecretPasswordKey }}{{- else -}}password{{- end -}}
{{- else -}}
{{ .Values.externalDatabase.existingSecretPasswordKey }}
{{- end -}}
{{- end }}

{{/*
Env shared by every container that talks to the database (the app, the init gate and
the migration Job). Non-secret settings come from the ConfigMap via envFrom.
*/}}
{{- define "greeter.databasePasswordEnv" -}}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "greeter.databaseSecretName" . }}
      key: {{ include "greeter.databaseSecretKey" . }}
{{- with .Values.externalDatabase.caBundle }}
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
{{- with .Values.externalDatabase.caBundle }}{{- if or .secretName .configMapName }}
- name: database-ca
  mountPath: /etc/greeter/database-ca
  readOnly: true
{{- end }}{{- end }}
{{- end }}

{{- define "greeter.caVolume" -}}
{{- with .Values.externalDatabase.caBundle }}
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
{{- if .Values.postgresql.enabled -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "greeter.componentSelectorLabels" (dict "ctx" $ "component" "database") | nindent 10 }}
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
{{- if not $.Values.postgresql.enabled }}
{{- fail "postgresql.auth.password applies to the in-cluster PostgreSQL only; an external database's password is in externalDatabase.existingSecret" }}
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
