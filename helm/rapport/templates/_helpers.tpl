{{/* The four services: name → gRPC port. Admin (metrics) port = gRPC + 1000. */}}
{{- define "rapport.services" -}}
profile: 50051
classification: 50052
routing: 50053
outreach: 50054
{{- end }}

{{- define "rapport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rapport.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rapport.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rapport.labels" -}}
helm.sh/chart: {{ include "rapport.chart" . }}
app.kubernetes.io/name: {{ include "rapport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rapport
{{- end }}

{{- define "rapport.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rapport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component; call with (dict "root" $ "component" "routing"). */}}
{{- define "rapport.componentLabels" -}}
{{ include "rapport.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "rapport.componentSelector" -}}
{{ include "rapport.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "rapport.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rapport.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rapport.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* gRPC URL of a service's ClusterIP Service; (dict "root" $ "component" "profile"). */}}
{{- define "rapport.serviceURL" -}}
{{- $ports := include "rapport.services" .root | fromYaml }}
{{- $scheme := ternary "https" "http" (eq .root.Values.tls.mode "mtls") }}
{{- printf "%s://%s-%s:%v" $scheme (include "rapport.fullname" .root) .component (index $ports .component) }}
{{- end }}

{{- define "rapport.redisSecretName" -}}
{{- if .Values.redis.external.existingSecret }}
{{- .Values.redis.external.existingSecret }}
{{- else }}
{{- printf "%s-redis-url" (include "rapport.fullname" .) }}
{{- end }}
{{- end }}

{{- define "rapport.redisSecretKey" -}}
{{- if .Values.redis.external.existingSecret }}
{{- .Values.redis.external.existingSecretKey }}
{{- else }}
{{- "redis-url" }}
{{- end }}
{{- end }}

{{- define "rapport.databaseSecretName" -}}
{{- if .Values.postgresql.external.existingSecret }}
{{- .Values.postgresql.external.existingSecret }}
{{- else }}
{{- printf "%s-database-url" (include "rapport.fullname" .) }}
{{- end }}
{{- end }}

{{- define "rapport.databaseSecretKey" -}}
{{- if .Values.postgresql.external.existingSecret }}
{{- .Values.postgresql.external.existingSecretKey }}
{{- else }}
{{- "database-url" }}
{{- end }}
{{- end }}

{{/* The in-chart PostgreSQL password: the value, else the one already in the cluster, else a new random one. */}}
{{- define "rapport.postgresqlPassword" -}}
{{- if .Values.postgresql.auth.password }}
{{- .Values.postgresql.auth.password }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-postgresql" (include "rapport.fullname" .)) }}
{{- if and $existing $existing.data (hasKey $existing.data "password") }}
{{- index $existing.data "password" | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}
{{- end }}
