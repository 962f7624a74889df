{{/*
High availability mode: whether it is on (validating replicaCount) and how many client pods there are.
*/}}

{{/*
True when high availability mode is on; validates replicaCount.
*/}}
{{- define "ha-broker.ha" -}}
{{- if .Values.highAvailabilityMode.enabled }}
{{- $n := int .Values.replicaCount }}
{{- if or (lt $n 2) (gt $n 4) }}
{{- fail (printf "replicaCount must be between 2 and 4 when highAvailabilityMode.enabled=true (Snyk allows at most 4 broker clients per token; a 5th never gets a connection allocated), got %v" .Values.replicaCount) }}
{{- end }}
{{- "true" }}
{{- end }}
{{- end }}

{{/*
Number of broker client pods.
*/}}
{{- define "ha-broker.replicas" -}}
{{- if include "ha-broker.ha" . }}{{ int .Values.replicaCount }}{{ else }}1{{ end }}
{{- end }}
