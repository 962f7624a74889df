{{/*
Names and labels: the chart and full names (and the names derived from them, each within the 63-character
DNS label limit), the labels every object carries and the selector labels of the pods, the shared Service's
name and the service account's.
*/}}

{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "ha-broker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: "<release>-<chart name>" unless the release name already contains the chart name,
truncated to 63 characters.
*/}}
{{- define "ha-broker.fullname" -}}
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
A name derived from the full name with a suffix, kept within 63 characters.
Call with (dict "root" $ "suffix" "x").
*/}}
{{- define "ha-broker.suffixedName" -}}
{{- $max := sub 62 (len .suffix) | int }}
{{- printf "%s-%s" (include "ha-broker.fullname" .root | trunc $max | trimSuffix "-") .suffix }}
{{- end }}

{{/*
Name of the Deployment and Service of replica .index (HA mode): "<fullname>-<index>".
*/}}
{{- define "ha-broker.replicaName" -}}
{{- include "ha-broker.suffixedName" (dict "root" .root "suffix" (toString .index)) }}
{{- end }}

{{- define "ha-broker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels shared by every pod of the release.
*/}}
{{- define "ha-broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ha-broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: client
{{- end }}

{{/*
Common labels.
*/}}
{{- define "ha-broker.labels" -}}
helm.sh/chart: {{ include "ha-broker.chart" . }}
{{ include "ha-broker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ha-broker
{{- include "ha-broker.extraLabels" . }}
{{- end }}

{{/*
labels (snyk-broker-helm's value) and commonLabels (snyk-universal-broker-helm's), one per line with a leading newline: the chart's own labels win, as in
snyk-broker-helm.
*/}}
{{- define "ha-broker.extraLabels" -}}
{{- range $k, $val := merge (dict) (.Values.labels | default dict) (.Values.commonLabels | default dict) }}
{{- if not (has $k (list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of")) }}
{{ $k }}: {{ toString $val | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the shared Service (the single one when HA is off): service.name, else snyk-broker-helm's
"<scmType>-broker-service-<release>" (its scmType part shortened to fit 63 characters, as Snyk's chart does), or in
Universal Broker mode snyk-universal-broker-helm's "<release>-snyk-universal-broker".
*/}}
{{- define "ha-broker.sharedServiceName" -}}
{{- if .Values.service.name }}
{{- .Values.service.name }}
{{- else if include "ha-broker.universal" . }}
{{- /* snyk-universal-broker-helm's Service name, so a brokerClientUrl written for it keeps working. */}}
{{- include "ha-broker.universalFullname" . }}
{{- else }}
{{- $sfx := include "ha-broker.snykSuffix" . }}
{{- $max := sub 63 (add (len "-broker-service") (len $sfx)) | int }}
{{- if lt $max 1 }}
{{- include "ha-broker.suffixedName" (dict "root" . "suffix" "broker-service") }}
{{- else }}
{{- printf "%s-broker-service%s" (include "ha-broker.scmType" . | trunc $max | trimSuffix "-") $sfx }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ha-broker.serviceAccountName" -}}
{{- if .Values.serviceAccount.existingName }}
{{- .Values.serviceAccount.existingName }}
{{- else if eq (toString .Values.serviceAccount.enabled) "false" }}
{{- "default" }}
{{- else if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "ha-broker.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}
