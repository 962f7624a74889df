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

{{/*
The region's (broker server URL, API URL): this chart's region names for the classic client, snyk-universal-broker-helm's
URL fragments in Universal Broker mode (see _universal.tpl).
*/}}
{{- define "ha-broker.modeRegionUrls" -}}
{{- if include "ha-broker.universal" . }}{{ include "ha-broker.universalRegionUrls" . }}{{ else }}{{ include "ha-broker.regionUrls" . }}{{ end }}
{{- end }}

{{- define "ha-broker.brokerServerUrl" -}}
{{- .Values.brokerServerUrl | default (include "ha-broker.modeRegionUrls" . | splitList " " | first) }}
{{- end }}

{{/*
Dispatcher base URL (BROKER_DISPATCHER_BASE_URL); in Universal Broker mode also the Snyk API the client gets its
OAuth token and connections from.
*/}}
{{- define "ha-broker.dispatcherUrl" -}}
{{- .Values.highAvailabilityMode.dispatcherUrl | default .Values.brokerDispatcherUrl | default (include "ha-broker.modeRegionUrls" . | splitList " " | last) }}
{{- end }}

{{- define "ha-broker.https" -}}
{{- if or .Values.enableBrokerLocalWebserverOverHttps .Values.localWebServer.https (include "ha-broker.hasTlsCert" .) }}true{{ end }}
{{- end }}

{{/*
The client's container port: snyk-broker-helm's deployment.container.containerPort, snyk-universal-broker-helm's
containerPort, else port.
*/}}
{{- define "ha-broker.port" -}}
{{- $d := .Values.deployment | default dict }}
{{- $c := $d.container | default dict }}
{{- $c.containerPort | default .Values.containerPort | default .Values.port }}
{{- end }}

{{/*
Port of the Services: snyk-universal-broker-helm's service.ports.http, else service.port.
*/}}
{{- define "ha-broker.servicePort" -}}
{{- $p := .Values.service.ports | default dict }}
{{- $p.http | default .Values.service.port }}
{{- end }}

{{- define "ha-broker.brokerClientUrl" -}}
{{- .Values.brokerClientUrl | default (printf "%s://%s.%s.svc.%s:%v" (ternary "https" "http" (eq (include "ha-broker.https" .) "true")) (include "ha-broker.sharedServiceName" .) .Release.Namespace .Values.clusterDomain (include "ha-broker.servicePort" .)) }}
{{- end }}
