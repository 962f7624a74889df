{{/*
Universal Broker mode (issue 20): one client serves every connection of a Snyk deployment, configured
with snyk-universal-broker-helm's values (deploymentId, clientId, clientSecret, credentialReferences,
...). The facts about that chart (value names, Secret names and keys, the env it sets) are from its
templates and tests; docs/chart.md and the README's "Universal Broker" section describe the mapping.
*/}}

{{/*
"true" in Universal Broker mode: universalBroker.enabled true, or (left empty) any of the platform
credentials given: deploymentId, clientId, clientSecret or platformAuthSecret.name. A values file
written for snyk-universal-broker-helm always has them, so it needs no extra line.
*/}}
{{- define "ha-broker.universal" -}}
{{- $sel := .Values.universalBroker.enabled }}
{{- if kindIs "invalid" $sel }}
{{- if or .Values.deploymentId .Values.clientId .Values.clientSecret .Values.platformAuthSecret.name }}true{{ end }}
{{- else if include "ha-broker.truthy" $sel }}true
{{- end }}
{{- end }}

{{/*
snyk-universal-broker-helm's object name, "<release>-<suffix>" within 63 characters (its Secrets are named so).
*/}}
{{- define "ha-broker.releaseName" -}}
{{- printf "%s-%s" .root.Release.Name .suffix | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
snyk-universal-broker-helm's full name (its Service's name): fullnameOverride, else the release name when it contains
"snyk-universal-broker", else "<release>-snyk-universal-broker", within 63 characters.
*/}}
{{- define "ha-broker.universalFullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains "snyk-universal-broker" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-snyk-universal-broker" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "ha-broker.platformSecretName" -}}
{{- .Values.platformAuthSecret.name | default (include "ha-broker.releaseName" (dict "root" . "suffix" "platform-secret")) }}
{{- end }}

{{- define "ha-broker.credsSecretName" -}}
{{- .Values.credentialReferencesSecret.name | default (include "ha-broker.releaseName" (dict "root" . "suffix" "creds-secret")) }}
{{- end }}

{{/*
"true" when the chart writes the platform Secret (DEPLOYMENT_ID, CLIENT_ID, CLIENT_SECRET); all three are then required.
*/}}
{{- define "ha-broker.chartHoldsPlatform" -}}
{{- if and (include "ha-broker.universal" .) (not .Values.platformAuthSecret.name) }}
{{- $unset := list }}
{{- range (list "deploymentId" "clientId" "clientSecret") }}
{{- if not (get $.Values .) }}{{ $unset = append $unset . }}{{ end }}
{{- end }}
{{- if $unset }}
{{- fail (printf "Universal Broker mode needs %s (from the Broker App installed in Snyk), or platformAuthSecret.name: an existing Secret with DEPLOYMENT_ID, CLIENT_ID and CLIENT_SECRET" (join ", " $unset)) }}
{{- end }}true
{{- end }}
{{- end }}

{{/*
The credentialReferences keys, checked: environment variable names, or file names ending in .pem (GitHub App keys,
mounted as files at privateKeyMountPath). Fails, naming the bad keys, as snyk-universal-broker-helm does.
*/}}
{{- define "ha-broker.credentialKeys" -}}
{{- $bad := list }}
{{- range $k, $_ := .Values.credentialReferences }}
{{- if not (or (regexMatch "^[a-zA-Z_][a-zA-Z0-9_]*$" $k) (regexMatch "^[A-Za-z0-9_][A-Za-z0-9._-]*\\.pem$" $k)) }}
{{- $bad = append $bad $k }}
{{- end }}
{{- end }}
{{- if $bad }}
{{- fail (printf "Key(s) \"%s\" in .Values.credentialReferences are unsupported. All keys must be valid environment variable names, or file names ending in .pem" ($bad | sortAlpha | join ", ")) }}
{{- end }}
{{- keys (.Values.credentialReferences | default dict) | sortAlpha | toJson }}
{{- end }}

{{/*
"true" when the chart writes the credential references Secret (credentialReferences given, no
credentialReferencesSecret.name).
*/}}
{{- define "ha-broker.chartHoldsCreds" -}}
{{- if and (include "ha-broker.universal" .) (not .Values.credentialReferencesSecret.name) .Values.credentialReferences }}true{{ end }}
{{- end }}

{{/*
"true" when the pods load a credential references Secret with envFrom (the chart's or an existing one).
*/}}
{{- define "ha-broker.hasCreds" -}}
{{- if or (include "ha-broker.chartHoldsCreds" .) .Values.credentialReferencesSecret.name }}true{{ end }}
{{- end }}

{{/*
The .pem keys of the credential references Secret, as a JSON list: from credentialReferences, or for an existing
Secret credentialReferencesSecret.pemKeys, else (as snyk-universal-broker-helm does) the keys found with lookup,
which sees nothing under helm template or --dry-run.
*/}}
{{- define "ha-broker.pemKeys" -}}
{{- $keys := list }}
{{- if include "ha-broker.chartHoldsCreds" . }}
{{- range (include "ha-broker.credentialKeys" . | fromJsonArray) }}
{{- if hasSuffix ".pem" . }}{{ $keys = append $keys . }}{{ end }}
{{- end }}
{{- else if .Values.credentialReferencesSecret.name }}
{{- if .Values.credentialReferencesSecret.pemKeys }}
{{- $keys = .Values.credentialReferencesSecret.pemKeys }}
{{- else }}
{{- $found := lookup "v1" "Secret" .Release.Namespace .Values.credentialReferencesSecret.name }}
{{- range $k, $_ := ($found.data | default dict) }}
{{- if hasSuffix ".pem" $k }}{{ $keys = append $keys $k }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- $keys | sortAlpha | toJson }}
{{- end }}

{{/*
Snyk region of snyk-universal-broker-helm: "" is SNYK-US-01 (broker.snyk.io, api.snyk.io); any other value is the
URL fragment, "eu" giving broker.eu.snyk.io and api.eu.snyk.io. This chart's classic name us2 means that chart's "us".
List of (broker server URL, API URL).
*/}}
{{- define "ha-broker.universalRegionUrls" -}}
{{- $r := toString (.Values.region | default "") | lower }}
{{- if eq $r "us2" }}{{ $r = "us" }}{{ end }}
{{- if eq $r "" }}
{{- "https://broker.snyk.io https://api.snyk.io" }}
{{- else }}
{{- printf "https://broker.%s.snyk.io https://api.%s.snyk.io" $r $r }}
{{- end }}
{{- end }}

{{/*
One ACCEPT_* variable from a switch that may be unset (null or ""), a boolean or a "true"/"false" string.
*/}}
{{- define "ha-broker.universalSwitch" -}}
{{- $val := .value }}
{{- if and (not (kindIs "invalid" $val)) (ne (toString $val) "") }}
{{- toJson (list (dict "name" .name "value" (ternary "true" "false" (eq (include "ha-broker.truthy" $val) "true")))) }}
{{- else }}[]{{ end }}
{{- end }}

{{/*
The ACCEPT_* variables of Universal Broker mode, as a JSON list. The client turns Code, IaC, AppRisk, large manifests
and custom PR templates on by itself in this mode; a switch given here is passed as given, false included (Snyk's chart
leaves a false switch out, which keeps the broker's default). acceptIaC: a comma-separated list of tf, yaml, yml,
json, tpl, or "" to turn the IaC rules off.
*/}}
{{- define "ha-broker.universalAccepts" -}}
{{- $v := .Values }}
{{- $env := list }}
{{- range (list (list "acceptAppRisk" "ACCEPT_APPRISK") (list "acceptCode" "ACCEPT_CODE") (list "acceptLargeManifests" "ACCEPT_LARGE_MANIFESTS") (list "acceptCustomPrTemplates" "ACCEPT_CUSTOM_PR_TEMPLATES") (list "acceptGit" "ACCEPT_GIT") (list "acceptEssentials" "ACCEPT_ESSENTIALS")) }}
{{- $env = concat $env (include "ha-broker.universalSwitch" (dict "name" (index . 1) "value" (index $v (index . 0))) | fromJsonArray) }}
{{- end }}
{{- $iac := $v.acceptIaC }}
{{- if kindIs "invalid" $iac }}
{{- with $v.acceptIac }}{{ $env = append $env (dict "name" "ACCEPT_IAC" "value" (toString .)) }}{{ end }}
{{- else if has (toString $iac | nospace | lower) (list "" "false") }}
{{- $env = append $env (dict "name" "ACCEPT_IAC" "value" "false") }}
{{- else }}
{{- $exts := toString $iac | nospace }}
{{- range (splitList "," $exts) }}
{{- if not (has . (list "tf" "yaml" "yml" "json" "tpl")) }}
{{- fail (printf "Unrecognised extension for ACCEPT_IAC: %s (acceptIaC takes tf, yaml, yml, json, tpl, comma separated, or \"\")" .) }}
{{- end }}
{{- end }}
{{- $env = append $env (dict "name" "ACCEPT_IAC" "value" $exts) }}
{{- end }}
{{- toJson $env }}
{{- end }}

{{/*
Values of the classic client that mean nothing to a Universal Broker (its connections and their credentials come
from the Snyk platform and credentialReferences): a clear failure instead of a silently ignored token.
*/}}
{{- define "ha-broker.refuseClassicInUniversal" -}}
{{- if include "ha-broker.universal" . }}
{{- $v := .Values }}
{{- $set := list }}
{{- range $k := list "brokerToken" "existingSecret" "scmToken" "scmTokenPool" "accept" "acceptJson" "acceptJsonFile" "existingConfigMap" "github" "gitlab" "bitbucket" "azureReposOrg" "artifactoryUrl" "baseNexusUrl" "jiraHostname" "sonarqubeHostUrl" "checkmarx" }}
{{- if index $v $k }}{{ $set = append $set $k }}{{ end }}
{{- end }}
{{- range $k := list "brokerTokenSecret" "externalCredentialSecret" "scmTokenPoolSecret" }}
{{- if (index $v $k).name }}{{ $set = append $set (printf "%s.name" $k) }}{{ end }}
{{- end }}
{{- if $v.githubApp.appId }}{{ $set = append $set "githubApp.appId" }}{{ end }}
{{- if $set }}
{{- fail (printf "Universal Broker mode (deploymentId/clientId/clientSecret or universalBroker.enabled) takes its connections from the Snyk platform: %s belong to the classic client. Give each connection's secrets as credentialReferences (ENV_NAME: value) instead, or set universalBroker.enabled=false for the classic client" (join ", " $set)) }}
{{- end }}
{{- end }}
{{- range $k := list "sidecars" "initContainers" }}
{{- if index $.Values $k }}
{{- fail (printf "%s (snyk-universal-broker-helm) fails the install: this chart runs the broker client as the pod's only container" $k) }}
{{- end }}
{{- end }}
{{- if and .Values.httpRoute .Values.httpRoute.enabled }}
{{- fail "httpRoute.enabled (snyk-universal-broker-helm's Gateway API route) fails the install: this chart has no HTTPRoute; use ingress or brokerIngress, or add one with extraObjects" }}
{{- end }}
{{- end }}
