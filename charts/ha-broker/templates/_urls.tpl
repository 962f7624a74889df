{{/*
The URLs of a broker client: the broker server and dispatcher it connects to (by region, or given), and the
port, scheme and URL it is reached at inside the cluster.
*/}}

{{/*
Regional endpoints: list of (broker server URL, API/dispatcher URL).
*/}}
{{- define "ha-broker.regionUrls" -}}
{{- $regions := dict
  "us" (list "https://broker.snyk.io" "https://api.snyk.io")
  "us2" (list "https://broker.us.snyk.io" "https://api.us.snyk.io")
  "eu" (list "https://broker.eu.snyk.io" "https://api.eu.snyk.io")
  "au" (list "https://broker.au.snyk.io" "https://api.au.snyk.io") }}
{{- $region := .Values.region | default "us" }}
{{- if not (hasKey $regions $region) }}
{{- fail (printf "region must be one of us, us2, eu, au (got %q); set brokerServerUrl and highAvailabilityMode.dispatcherUrl for other environments" $region) }}
{{- end }}
{{- join " " (get $regions $region) }}
{{- end }}

{{- define "ha-broker.brokerServerUrl" -}}
{{- .Values.brokerServerUrl | default (include "ha-broker.regionUrls" . | splitList " " | first) }}
{{- end }}

{{- define "ha-broker.dispatcherUrl" -}}
{{- .Values.highAvailabilityMode.dispatcherUrl | default .Values.brokerDispatcherUrl | default (include "ha-broker.regionUrls" . | splitList " " | last) }}
{{- end }}

{{- define "ha-broker.https" -}}
{{- if or .Values.enableBrokerLocalWebserverOverHttps (and .Values.httpsCert .Values.httpsKey) .Values.httpsSecret.name }}true{{ end }}
{{- end }}

{{- define "ha-broker.port" -}}
{{- $d := .Values.deployment | default dict }}
{{- $c := $d.container | default dict }}
{{- $c.containerPort | default .Values.port }}
{{- end }}

{{- define "ha-broker.brokerClientUrl" -}}
{{- .Values.brokerClientUrl | default (printf "%s://%s.%s.svc.%s:%v" (ternary "https" "http" (eq (include "ha-broker.https" .) "true")) (include "ha-broker.sharedServiceName" .) .Release.Namespace .Values.clusterDomain .Values.service.port) }}
{{- end }}
