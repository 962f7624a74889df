{{/*
High availability mode: whether it is on (validating the replica count) and how many client pods there are.
*/}}

{{/*
highAvailabilityMode.enabled, or when it is left empty (null) the mode's default: off for the classic client, on for
a Universal Broker (snyk-universal-broker-helm's default).
*/}}
{{- define "ha-broker.haRequested" -}}
{{- $e := .Values.highAvailabilityMode.enabled }}
{{- if kindIs "invalid" $e }}
{{- include "ha-broker.universal" . }}
{{- else if include "ha-broker.truthy" $e }}true
{{- end }}
{{- end }}

{{/*
The replica count: highAvailabilityMode.replicaCount (snyk-universal-broker-helm's newer place for it), else replicaCount.
*/}}
{{- define "ha-broker.replicaCount" -}}
{{- $n := .Values.highAvailabilityMode.replicaCount }}
{{- if kindIs "invalid" $n }}{{ int .Values.replicaCount }}{{ else }}{{ int $n }}{{ end }}
{{- end }}

{{/*
True when high availability mode is on; validates the replica count.
*/}}
{{- define "ha-broker.ha" -}}
{{- if include "ha-broker.haRequested" . }}
{{- $n := int (include "ha-broker.replicaCount" .) }}
{{- if or (lt $n 2) (gt $n 4) }}
{{- fail (printf "replicaCount must be between 2 and 4 when highAvailabilityMode.enabled=true (Snyk allows at most 4 broker clients per token; a 5th never gets a connection allocated), got %v" $n) }}
{{- end }}
{{- "true" }}
{{- end }}
{{- end }}

{{/*
Number of broker client pods.
*/}}
{{- define "ha-broker.replicas" -}}
{{- if include "ha-broker.ha" . }}{{ include "ha-broker.replicaCount" . }}{{ else }}1{{ end }}
{{- end }}
