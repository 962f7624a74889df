{{/*
The objects a broker client reads its token, accept rules, CA and TLS certificate from: the chart's Secret or
ConfigMap or an existing one (name and key), whether each is there, the CA's PEM text, and the checksums that
roll the pods when one changes.
*/}}

{{/*
The broker token's Secret and key: brokerTokenSecret (snyk-broker-helm) or existingSecret, snyk-broker-helm's default
Secret with useExternalSecrets, else the chart's Secret.
*/}}
{{- define "ha-broker.secretName" -}}
{{- if .Values.brokerTokenSecret.name }}{{ .Values.brokerTokenSecret.name }}
{{- else if .Values.existingSecret }}{{ .Values.existingSecret }}
{{- else if .Values.useExternalSecrets }}{{ printf "%s-broker-token%s" (include "ha-broker.scmType" .) (include "ha-broker.snykSuffix" .) }}
{{- else }}{{ include "ha-broker.fullname" . }}{{ end }}
{{- end }}

{{- define "ha-broker.secretTokenKey" -}}
{{- if .Values.brokerTokenSecret.name }}{{ .Values.brokerTokenSecret.key | default (printf "%s-broker-token-key" (include "ha-broker.scmType" .)) }}
{{- else if .Values.existingSecret }}{{ .Values.existingSecretTokenKey }}
{{- else if .Values.useExternalSecrets }}{{ printf "%s-broker-token-key" (include "ha-broker.scmType" .) }}
{{- else }}BROKER_TOKEN{{ end }}
{{- end }}

{{- define "ha-broker.chartHoldsToken" -}}
{{- if not (or .Values.brokerTokenSecret.name .Values.existingSecret .Values.useExternalSecrets) }}true{{ end }}
{{- end }}

{{- define "ha-broker.acceptConfigMapName" -}}
{{- .Values.existingConfigMap | default (include "ha-broker.suffixedName" (dict "root" . "suffix" "accept")) }}
{{- end }}

{{- define "ha-broker.acceptKey" -}}
{{- if .Values.existingConfigMap }}{{ .Values.existingConfigMapKey }}{{ else }}accept.json{{ end }}
{{- end }}

{{- define "ha-broker.hasAccept" -}}
{{- include "ha-broker.customAccept" . }}
{{- end }}

{{- define "ha-broker.caSecretName" -}}
{{- .Values.existingCaCertSecret | default .Values.caCertFileSecret.name | default .Values.caCertSecret.name | default (include "ha-broker.suffixedName" (dict "root" . "suffix" "ca")) }}
{{- end }}

{{- define "ha-broker.caKey" -}}
{{- if .Values.existingCaCertSecret }}{{ .Values.existingCaCertSecretKey }}
{{- else if .Values.caCertFileSecret.name }}{{ .Values.caCertFileSecret.key | default "cacert" }}
{{- else if .Values.caCertSecret.name }}{{ .Values.caCertSecret.caCertKey | default "ca.pem" }}
{{- else }}ca.pem{{ end }}
{{- end }}

{{- define "ha-broker.hasCa" -}}
{{- if or .Values.caCert .Values.caCertFile (include "ha-broker.existingCa" .) }}true{{ end }}
{{- end }}

{{/*
"true" when the CA bundle comes from an existing Secret: existingCaCertSecret, snyk-broker-helm's caCertFileSecret or
snyk-universal-broker-helm's caCertSecret.
*/}}
{{- define "ha-broker.existingCa" -}}
{{- if or .Values.existingCaCertSecret .Values.caCertFileSecret.name .Values.caCertSecret.name }}true{{ end }}
{{- end }}

{{/*
PEM text of the CA bundle the chart stores: caCert (PEM or a chart file name, as in snyk-broker-helm) or caCertFile.
*/}}
{{- define "ha-broker.caPem" -}}
{{- if and .Values.caCert .Values.caCertFile }}
{{- fail "give caCert or caCertFile, not both" }}
{{- end }}
{{- if .Values.caCert }}
{{- include "ha-broker.pemValue" (dict "root" . "name" "caCert" "value" .Values.caCert "kind" "CERTIFICATE") }}
{{- else if .Values.caCertFile }}
{{- include "ha-broker.pemValue" (dict "root" . "name" "caCertFile" "value" .Values.caCertFile "kind" "CERTIFICATE") }}
{{- end }}
{{- end }}

{{- define "ha-broker.tlsSecretName" -}}
{{- .Values.httpsSecret.name | default .Values.localWebServerSecret.name | default (include "ha-broker.suffixedName" (dict "root" . "suffix" "tls")) }}
{{- end }}

{{- define "ha-broker.hasTlsCert" -}}
{{- if or (include "ha-broker.existingTls" .) (include "ha-broker.tlsPair" . | fromJsonArray) }}true{{ end }}
{{- end }}

{{/*
"true" when the HTTPS certificate is an existing Secret: httpsSecret.name or snyk-universal-broker-helm's
localWebServerSecret.name.
*/}}
{{- define "ha-broker.existingTls" -}}
{{- if or .Values.httpsSecret.name .Values.localWebServerSecret.name }}true{{ end }}
{{- end }}

{{/*
The inline HTTPS certificate and key, as a JSON list (empty when not given): httpsCert/httpsKey, or
snyk-universal-broker-helm's localWebServer.certificate/key. Call with the root context.
*/}}
{{- define "ha-broker.tlsPair" -}}
{{- if and .Values.httpsCert .Values.httpsKey }}
{{- list (dict "name" "httpsCert" "value" .Values.httpsCert) (dict "name" "httpsKey" "value" .Values.httpsKey) | toJson }}
{{- else if and .Values.localWebServer.certificate .Values.localWebServer.key }}
{{- list (dict "name" "localWebServer.certificate" "value" .Values.localWebServer.certificate) (dict "name" "localWebServer.key" "value" .Values.localWebServer.key) | toJson }}
{{- else }}[]{{ end }}
{{- end }}

{{/*
"true" when a GitHub App is configured (githubApp.appId): its key is mounted from githubApp.privateKeySecret.
*/}}
{{- define "ha-broker.hasGithubApp" -}}
{{- if .Values.githubApp.appId }}true{{ end }}
{{- end }}

{{/*
"true" when commit signing is on (commitSigning.enabled): the pods load its variables with envFrom from
commitSigningSecret.name or the chart's Secret, which needs all four values (snyk-universal-broker-helm's message).
*/}}
{{- define "ha-broker.hasCommitSigning" -}}
{{- if .Values.commitSigning.enabled }}
{{- if not .Values.commitSigningSecret.name }}
{{- $unset := list }}
{{- range (list "name" "email" "gpgPrivateKey" "passphrase") }}
{{- if not (get $.Values.commitSigning .) }}{{ $unset = append $unset . }}{{ end }}
{{- end }}
{{- if $unset }}{{ fail (printf "Missing value(s) under .Values.commitSigning for: %s" (join "," $unset)) }}{{ end }}
{{- end }}true
{{- end }}
{{- end }}

{{- define "ha-broker.commitSigningSecretName" -}}
{{- .Values.commitSigningSecret.name | default (include "ha-broker.suffixedName" (dict "root" . "suffix" "commit-signing")) }}
{{- end }}

{{- define "ha-broker.chartHoldsCommitSigning" -}}
{{- if and (include "ha-broker.hasCommitSigning" .) (not .Values.commitSigningSecret.name) }}true{{ end }}
{{- end }}

{{/*
Checksum annotations: a changed token, accept file, CA, certificate, signing key, platform credentials or credential
references rolls the pods (the chart's Secrets by content, an existing one by name). In Universal Broker mode
secret-universal.yaml holds both the platform Secret and the credential references Secret.
*/}}
{{- define "ha-broker.checksums" -}}
{{- if not (include "ha-broker.universal" .) }}
checksum/secret: {{ printf "%s/%s\n%s" (include "ha-broker.secretName" .) (include "ha-broker.secretTokenKey" .) (include (print .Template.BasePath "/secret.yaml") .) | sha256sum }}
{{- end }}
{{- if .Values.existingConfigMap }}
checksum/accept: {{ printf "existing:%s/%s" .Values.existingConfigMap .Values.existingConfigMapKey | sha256sum }}
{{- else if include "ha-broker.hasAccept" . }}
checksum/accept: {{ include (print .Template.BasePath "/configmap-accept.yaml") . | sha256sum }}
{{- end }}
{{- if include "ha-broker.existingCa" . }}
checksum/ca: {{ printf "existing:%s/%s" (include "ha-broker.caSecretName" .) (include "ha-broker.caKey" .) | sha256sum }}
{{- else if include "ha-broker.hasCa" . }}
checksum/ca: {{ include (print .Template.BasePath "/secret-ca.yaml") . | sha256sum }}
{{- end }}
{{- if include "ha-broker.chartHoldsCommitSigning" . }}
checksum/commit-signing: {{ include (print .Template.BasePath "/secret-commit-signing.yaml") . | sha256sum }}
{{- else if include "ha-broker.hasCommitSigning" . }}
checksum/commit-signing: {{ printf "existing:%s" .Values.commitSigningSecret.name | sha256sum }}
{{- end }}
{{- if and (include "ha-broker.tlsPair" . | fromJsonArray) (not (include "ha-broker.existingTls" .)) }}
checksum/tls: {{ include (print .Template.BasePath "/secret-tls.yaml") . | sha256sum }}
{{- end }}
{{- if include "ha-broker.universal" . }}
checksum/universal: {{ printf "%s\nplatform:%s\ncredentials:%s %s" (include (print .Template.BasePath "/secret-universal.yaml") .) .Values.platformAuthSecret.name .Values.credentialReferencesSecret.name (include "ha-broker.pemKeys" .) | sha256sum }}
{{- end }}
{{- end }}
