{{/* Names and labels. */}}
{{- define "tradebot.fullname" -}}
{{- if contains "tradebot" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-tradebot" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tradebot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" -}}
{{- end -}}

{{/* Resource name of one component: (dict "root" $ "name" "execution"). */}}
{{- define "tradebot.name" -}}
{{- printf "%s-%s" (include "tradebot.fullname" .root) .name -}}
{{- end -}}

{{- define "tradebot.selectorLabels" -}}
app.kubernetes.io/name: tradebot
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "tradebot.labels" -}}
{{ include "tradebot.selectorLabels" . }}
app.kubernetes.io/part-of: tradebot
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "tradebot.chart" .root }}
{{- end -}}

{{/* Labels of chart-wide objects that belong to no single component. */}}
{{- define "tradebot.commonLabels" -}}
app.kubernetes.io/name: tradebot
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: tradebot
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "tradebot.chart" . }}
{{- end -}}

{{/* The components, in start order; gRPC services first. */}}
{{- define "tradebot.components" -}}tenants marketdata strategy execution dashboard exchangesim{{- end -}}
{{- define "tradebot.grpcServices" -}}tenants marketdata strategy execution{{- end -}}

{{/*
One component's configuration as JSON: `default:` with the component's own keys replacing whole
keys, and env merged variable by variable. Use: include "tradebot.config" (dict "root" $ "name" $n) | fromJson
*/}}
{{- define "tradebot.config" -}}
{{- $own := index .root.Values .name -}}
{{- $c := deepCopy .root.Values.default -}}
{{- range $k, $v := $own -}}
{{- if ne $k "env" -}}{{- $_ := set $c $k $v -}}{{- end -}}
{{- end -}}
{{- $env := deepCopy (.root.Values.default.env | default dict) -}}
{{- range $k, $v := ($own.env | default dict) -}}{{- $_ := set $env $k $v -}}{{- end -}}
{{- $_ := set $c "env" $env -}}
{{- toJson $c -}}
{{- end -}}

{{- define "tradebot.image" -}}
{{- $image := .config.image -}}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{/* host:port of a gRPC service inside the cluster. */}}
{{- define "tradebot.grpcAddr" -}}
{{- printf "%s:%d" (include "tradebot.name" .) (int .root.Values.ports.grpc) -}}
{{- end -}}

{{/* Dependency chart names follow their own fullname rule: release name, plus the chart name unless contained. */}}
{{- define "tradebot.dependencyName" -}}
{{- if contains .chart .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name .chart | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tradebot.natsUrl" -}}
{{- if .Values.externalNats.url -}}
{{- .Values.externalNats.url -}}
{{- else if .Values.nats.enabled -}}
{{- printf "nats://%s:4222" (include "tradebot.dependencyName" (dict "root" . "chart" "nats")) -}}
{{- else -}}
{{- fail "NATS: set nats.enabled=true or externalNats.url" -}}
{{- end -}}
{{- end -}}

{{- define "tradebot.databaseUrl" -}}
{{- if .Values.externalDatabase.url -}}
{{- .Values.externalDatabase.url -}}
{{- else if .Values.postgresql.enabled -}}
{{- $auth := .Values.postgresql.auth -}}
{{- printf "postgresql://%s@%s:5432/%s" $auth.username (include "tradebot.dependencyName" (dict "root" . "chart" "postgresql")) $auth.database -}}
{{- else -}}
{{- fail "PostgreSQL: set postgresql.enabled=true or externalDatabase.url" -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the database password, as "name key" (empty when there is none). */}}
{{- define "tradebot.databasePasswordSecret" -}}
{{- if .Values.externalDatabase.url -}}
{{- with .Values.externalDatabase.passwordSecret -}}{{- if .name -}}{{ .name }} {{ .key }}{{- end -}}{{- end -}}
{{- else if .Values.postgresql.enabled -}}
{{- include "tradebot.dependencyName" (dict "root" . "chart" "postgresql") }} password
{{- end -}}
{{- end -}}

{{- define "tradebot.simulatorUrl" -}}
{{- if .Values.bybit.simulatorUrl -}}
{{- .Values.bybit.simulatorUrl -}}
{{- else if .Values.exchangesim.enabled -}}
{{- printf "http://%s:%d" (include "tradebot.name" (dict "root" . "name" "exchangesim")) (int .Values.ports.exchangesim) -}}
{{- else -}}
{{- fail "bybit.env is simulator: enable exchangesim or set bybit.simulatorUrl" -}}
{{- end -}}
{{- end -}}

{{- define "tradebot.vaultRole" -}}
{{- printf "%s%s" .root.Values.vault.rolePrefix .name -}}
{{- end -}}

{{/* Whether a component logs in to Vault: "true" or "". */}}
{{- define "tradebot.vaultAuth" -}}
{{- if and .root.Values.vault.enabled .config.vault.auth -}}true{{- end -}}
{{- end -}}
