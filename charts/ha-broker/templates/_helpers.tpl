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
labels (snyk-broker-helm's value), one per line with a leading newline: the chart's own labels win, as in
snyk-broker-helm.
*/}}
{{- define "ha-broker.extraLabels" -}}
{{- range $k, $val := .Values.labels }}
{{- if not (has $k (list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of")) }}
{{ $k }}: {{ toString $val | quote }}
{{- end }}
{{- end }}
{{- end }}

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

{{/*
Name of the shared Service (the single one when HA is off): service.name, else snyk-broker-helm's
"<scmType>-broker-service-<release>" (its scmType part shortened to fit 63 characters, as Snyk's chart does).
*/}}
{{- define "ha-broker.sharedServiceName" -}}
{{- if .Values.service.name }}
{{- .Values.service.name }}
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
{{- .Values.existingCaCertSecret | default .Values.caCertFileSecret.name | default (include "ha-broker.suffixedName" (dict "root" . "suffix" "ca")) }}
{{- end }}

{{- define "ha-broker.caKey" -}}
{{- if .Values.existingCaCertSecret }}{{ .Values.existingCaCertSecretKey }}
{{- else if .Values.caCertFileSecret.name }}{{ .Values.caCertFileSecret.key | default "cacert" }}
{{- else }}ca.pem{{ end }}
{{- end }}

{{- define "ha-broker.hasCa" -}}
{{- if or .Values.caCert .Values.caCertFile .Values.existingCaCertSecret .Values.caCertFileSecret.name }}true{{ end }}
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
{{- .Values.httpsSecret.name | default (include "ha-broker.suffixedName" (dict "root" . "suffix" "tls")) }}
{{- end }}

{{- define "ha-broker.hasTlsCert" -}}
{{- if or .Values.httpsSecret.name (and .Values.httpsCert .Values.httpsKey) }}true{{ end }}
{{- end }}

{{/*
NODE_TLS_REJECT_UNAUTHORIZED=0 as snyk-broker-helm sets it: tlsRejectUnauthorized "0" without a CA, or
disableCaCertTrust with one. Unlike Snyk's chart, only "0", 0 and false turn the checks off (any other string
turned them off there too).
*/}}
{{- define "ha-broker.tlsOff" -}}
{{- $ca := or .Values.caCert .Values.caCertFile }}
{{- $t := toString .Values.tlsRejectUnauthorized }}
{{- if or (and (not $ca) (has $t (list "0" "false"))) (and $ca .Values.disableCaCertTrust) }}true{{ end }}
{{- end }}

{{- define "ha-broker.serviceAccountName" -}}
{{- if eq (toString .Values.serviceAccount.enabled) "false" }}
{{- "default" }}
{{- else if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "ha-broker.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{- define "ha-broker.image" -}}
{{- if include "ha-broker.snykImage" . }}
{{- printf "ghcr.io/ha-broker/ha-broker:%s" .Chart.AppVersion }}
{{- else if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
True when image.repository is Snyk's broker image (a snyk-broker-helm values file): this chart runs its own image
instead (Snyk's cannot run this chart's command); NOTES.txt says so.
*/}}
{{- define "ha-broker.snykImage" -}}
{{- if has (.Values.image.repository | trimPrefix "docker.io/" | trimPrefix "index.docker.io/") (list "snyk/broker") }}true{{ end }}
{{- end }}

{{/*
A probe: the chart's, with snyk-broker-helm's brokerLivenessProbe/brokerReadinessProbe switch and timings, on HTTPS
when the client serves HTTPS. Empty when switched off. Call with (dict "root" $ "probe" ... "snyk" ...).
*/}}
{{- define "ha-broker.probe" -}}
{{- $snyk := .snyk | default dict }}
{{- if not (eq (toString $snyk.enabled) "false") }}
{{- $p := deepCopy .probe }}
{{- with $snyk.config }}{{ $p = mergeOverwrite $p (deepCopy .) }}{{ end }}
{{- if and (include "ha-broker.https" .root) $p.httpGet }}
{{- $_ := set $p.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $p }}
{{- end }}
{{- end }}

{{/*
A security context, without runAsUser/runAsGroup/fsGroup on OpenShift (snyk-broker-helm's openshift value).
*/}}
{{- define "ha-broker.securityContext" -}}
{{- if include "ha-broker.truthy" .root.Values.openshift }}
{{- toYaml (omit .ctx "runAsUser" "runAsGroup" "fsGroup") }}
{{- else }}
{{- toYaml .ctx }}
{{- end }}
{{- end }}

{{- define "ha-broker.terminationGracePeriodSeconds" -}}
{{- $drain := int .Values.drainGraceSeconds }}
{{- $preStop := int .Values.preStopSleepSeconds }}
{{- if eq (toString .Values.terminationGracePeriodSeconds) "" }}
{{- add $preStop $drain 10 }}
{{- else }}
{{- $t := int .Values.terminationGracePeriodSeconds }}
{{- if le $t (add $preStop $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than drainGraceSeconds (%d) plus preStopSleepSeconds (%d): the grace period counts from the preStop hook, and the kubelet kills the client when it is over" $t $drain $preStop) }}
{{- end }}
{{- $t }}
{{- end }}
{{- end }}

{{/*
Stable BROKER_CLIENT_ID of a client: a UUID-formatted digest of namespace, full name and replica
index, so a restarted or rescheduled replica asks the dispatcher for the same allocation.
Call with (dict "root" $ "index" <int or "">).
*/}}
{{- define "ha-broker.clientId" -}}
{{- $h := printf "%s/%s/%v" .root.Release.Namespace (include "ha-broker.fullname" .root) .index | sha256sum }}
{{- printf "%s-%s-5%s-8%s-%s" (substr 0 8 $h) (substr 8 12 $h) (substr 13 16 $h) (substr 17 20 $h) (substr 20 32 $h) }}
{{- end }}

{{/*
Environment of a broker client container. Call with (dict "root" $ "index" <int or "">).
Entries of extraEnv replace the chart's entries of the same name.
*/}}
{{- define "ha-broker.env" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $env := list }}
{{- $env = append $env (dict "name" "BROKER_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" (include "ha-broker.secretName" $root) "key" (include "ha-broker.secretTokenKey" $root)))) }}
{{- $env = append $env (dict "name" "BROKER_SERVER_URL" "value" (include "ha-broker.brokerServerUrl" $root)) }}
{{- $env = append $env (dict "name" "BROKER_CLIENT_URL" "value" (include "ha-broker.brokerClientUrl" $root)) }}
{{- $env = append $env (dict "name" "BROKER_CLIENT_ID" "value" (include "ha-broker.clientId" .)) }}
{{- $env = append $env (dict "name" "PORT" "value" (include "ha-broker.port" $root)) }}
{{- $ha := include "ha-broker.ha" $root }}
{{- $env = append $env (dict "name" "BROKER_HA_MODE_ENABLED" "value" (ternary "true" "false" (eq $ha "true"))) }}
{{- if $ha }}
{{- $env = append $env (dict "name" "BROKER_DISPATCHER_BASE_URL" "value" (include "ha-broker.dispatcherUrl" $root)) }}
{{- if $v.highAvailabilityMode.dispatcherUrlPrefix }}
{{- $env = append $env (dict "name" "DISPATCHER_URL_PREFIX" "value" $v.highAvailabilityMode.dispatcherUrlPrefix) }}
{{- end }}
{{- end }}
{{- $env = concat $env (include "ha-broker.scm" $root | fromJson).env }}
{{- if include "ha-broker.hasAccept" $root }}
{{- $env = append $env (dict "name" "ACCEPT" "value" "/etc/ha-broker/accept/accept.json") }}
{{- end }}
{{- $env = append $env (dict "name" "PREFLIGHT_CHECKS_ENABLED" "value" (ternary "true" "false" (eq (toString $v.preflightChecks.enabled) "true"))) }}
{{- $env = append $env (dict "name" "LOG_LEVEL" "value" $v.logLevel) }}
{{- $env = append $env (dict "name" "LOG_ENABLE_BODY" "value" (toString $v.logEnableBody)) }}
{{- $env = append $env (dict "name" "BROKER_HEALTHCHECK_PATH" "value" $v.healthCheckPath) }}
{{- $env = append $env (dict "name" "BROKER_SYSTEMCHECK_PATH" "value" $v.systemCheckPath) }}
{{- $env = append $env (dict "name" "BROKER_CLIENT_DRAIN_GRACE_MS" "value" (toString (mul (int $v.drainGraceSeconds) 1000))) }}
{{- with $v.httpProxy }}
{{- $env = append $env (dict "name" "HTTP_PROXY" "value" .) }}
{{- end }}
{{- with $v.httpsProxy }}
{{- $env = append $env (dict "name" "HTTPS_PROXY" "value" .) }}
{{- end }}
{{- with $v.noProxy }}
{{- /* As snyk-broker-helm: no spaces, no scheme. */}}
{{- $env = append $env (dict "name" "NO_PROXY" "value" (regexReplaceAll "https?://" (. | nospace) "")) }}
{{- end }}
{{- if include "ha-broker.hasCa" $root }}
{{- $env = append $env (dict "name" "CA_CERT" "value" "/etc/ha-broker/ca/ca.pem") }}
{{- $env = append $env (dict "name" "NODE_EXTRA_CA_CERTS" "value" "/etc/ha-broker/ca/ca.pem") }}
{{- end }}
{{- if include "ha-broker.hasTlsCert" $root }}
{{- $env = append $env (dict "name" "HTTPS_CERT" "value" "/etc/ha-broker/tls/tls.crt") }}
{{- $env = append $env (dict "name" "HTTPS_KEY" "value" "/etc/ha-broker/tls/tls.key") }}
{{- end }}
{{- if include "ha-broker.tlsOff" $root }}
{{- $env = append $env (dict "name" "NODE_TLS_REJECT_UNAUTHORIZED" "value" "0") }}
{{- end }}
{{- /* env (snyk-broker-helm's {name, value} list), then extraEnv: each replaces the chart's entry of its name. */}}
{{- $extra := list }}
{{- range $v.env }}
{{- $e := dict "name" .name }}
{{- if hasKey . "valueFrom" }}{{ $_ := set $e "valueFrom" .valueFrom }}{{ else }}{{ $_ := set $e "value" (toString (.value | default "")) }}{{ end }}
{{- $extra = append $extra $e }}
{{- end }}
{{- $extra = concat $extra ($v.extraEnv | default list) }}
{{- $last := dict }}
{{- range $i, $e := $extra }}
{{- $_ := set $last $e.name $i }}
{{- end }}
{{- $out := list }}
{{- range $env }}
{{- if not (hasKey $last .name) }}
{{- $out = append $out . }}
{{- end }}
{{- end }}
{{- range $i, $e := $extra }}
{{- if eq (get $last $e.name) $i }}
{{- $out = append $out $e }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
Volume mounts of a broker client container.
*/}}
{{- define "ha-broker.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "ha-broker.hasAccept" . }}
- name: accept
  mountPath: /etc/ha-broker/accept
  readOnly: true
{{- end }}
{{- if include "ha-broker.hasCa" . }}
- name: ca
  mountPath: /etc/ha-broker/ca
  readOnly: true
{{- end }}
{{- if include "ha-broker.hasTlsCert" . }}
- name: tls
  mountPath: /etc/ha-broker/tls
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volumes of a broker client pod.
*/}}
{{- define "ha-broker.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- if include "ha-broker.hasAccept" . }}
- name: accept
  configMap:
    name: {{ include "ha-broker.acceptConfigMapName" . }}
    items:
      - key: {{ include "ha-broker.acceptKey" . }}
        path: accept.json
{{- end }}
{{- if include "ha-broker.hasCa" . }}
- name: ca
  secret:
    secretName: {{ include "ha-broker.caSecretName" . }}
    items:
      - key: {{ include "ha-broker.caKey" . }}
        path: ca.pem
{{- end }}
{{- if include "ha-broker.hasTlsCert" . }}
- name: tls
  secret:
    secretName: {{ include "ha-broker.tlsSecretName" . }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Checksum annotations: a changed token, accept file or CA rolls the pods.
*/}}
{{- define "ha-broker.checksums" -}}
checksum/secret: {{ printf "%s/%s\n%s" (include "ha-broker.secretName" .) (include "ha-broker.secretTokenKey" .) (include (print .Template.BasePath "/secret.yaml") .) | sha256sum }}
{{- if .Values.existingConfigMap }}
checksum/accept: {{ printf "existing:%s/%s" .Values.existingConfigMap .Values.existingConfigMapKey | sha256sum }}
{{- else if include "ha-broker.hasAccept" . }}
checksum/accept: {{ include (print .Template.BasePath "/configmap-accept.yaml") . | sha256sum }}
{{- end }}
{{- if or .Values.existingCaCertSecret .Values.caCertFileSecret.name }}
checksum/ca: {{ printf "existing:%s/%s" (include "ha-broker.caSecretName" .) (include "ha-broker.caKey" .) | sha256sum }}
{{- else if include "ha-broker.hasCa" . }}
checksum/ca: {{ include (print .Template.BasePath "/secret-ca.yaml") . | sha256sum }}
{{- end }}
{{- if and .Values.httpsCert .Values.httpsKey (not .Values.httpsSecret.name) }}
checksum/tls: {{ include (print .Template.BasePath "/secret-tls.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/*
Default scheduling: soft (or hard) anti-affinity between the replicas of this release.
*/}}
{{- define "ha-broker.affinity" -}}
{{- if .Values.affinity }}
{{- toYaml .Values.affinity }}
{{- else if eq .Values.podAntiAffinity "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "ha-broker.selectorLabels" . | nindent 12 }}
{{- else if eq .Values.podAntiAffinity "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "ha-broker.selectorLabels" . | nindent 10 }}
{{- end }}
{{- end }}

{{- define "ha-broker.topologySpreadConstraints" -}}
{{- if .Values.topologySpreadConstraints }}
{{- toYaml .Values.topologySpreadConstraints }}
{{- else if .Values.defaultTopologySpread }}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "ha-broker.selectorLabels" . | nindent 6 }}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "ha-broker.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/*
Pod spec of a broker client. Call with (dict "root" $ "index" <int or "">).
*/}}
{{- define "ha-broker.podSpec" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
serviceAccountName: {{ include "ha-broker.serviceAccountName" $root }}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ include "ha-broker.terminationGracePeriodSeconds" $root }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "ha-broker.securityContext" (dict "root" $root "ctx" $v.podSecurityContext) | nindent 2 }}
containers:
  - name: broker
    image: {{ include "ha-broker.image" $root | quote }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args: ["client"]
    ports:
      - name: http
        containerPort: {{ include "ha-broker.port" $root }}
        protocol: TCP
    env:
      {{- include "ha-broker.env" . | nindent 6 }}
    {{- with $v.extraEnvFrom }}
    envFrom:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    livenessProbe:
      {{- toYaml $v.livenessProbe | nindent 6 }}
    readinessProbe:
      {{- toYaml $v.readinessProbe | nindent 6 }}
    {{- if gt (int $v.preStopSleepSeconds) 0 }}
    lifecycle:
      # Serve on while the pod leaves the Service's endpoints; then SIGTERM starts the drain.
      # node is the image's one program (no shell, no sleep binary).
      preStop:
        exec:
          command: ["node", "-e", "setTimeout(() => {}, {{ mul (int $v.preStopSleepSeconds) 1000 }})"]
    {{- end }}
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    securityContext:
      {{- include "ha-broker.securityContext" (dict "root" $root "ctx" $v.securityContext) | nindent 6 }}
    volumeMounts:
      {{- include "ha-broker.volumeMounts" $root | nindent 6 }}
volumes:
  {{- include "ha-broker.volumes" $root | nindent 2 }}
{{- with (include "ha-broker.affinity" $root | trim) }}
affinity:
  {{- . | nindent 2 }}
{{- end }}
{{- with (include "ha-broker.topologySpreadConstraints" $root | trim) }}
topologySpreadConstraints:
  {{- . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The pod spec with snyk-broker-helm's values applied to it: brokerLivenessProbe/brokerReadinessProbe (switch and
timings) and HTTPS probes, brokerResources, then extraContainerSpecs and extraPodSpecs (a field given there
replaces the chart's). Call with (dict "root" $ "index" <int or "">).
*/}}
{{- define "ha-broker.finalPodSpec" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $spec := include "ha-broker.podSpec" . | fromYaml }}
{{- $c := index $spec.containers 0 }}
{{- range $name, $snyk := dict "livenessProbe" $v.brokerLivenessProbe "readinessProbe" $v.brokerReadinessProbe }}
{{- with get $c $name }}
{{- $p := include "ha-broker.probe" (dict "root" $root "probe" . "snyk" $snyk) }}
{{- if $p }}{{ $_ := set $c $name ($p | fromYaml) }}{{ else }}{{ $_ := unset $c $name }}{{ end }}
{{- end }}
{{- end }}
{{- with $v.brokerResources }}{{ $_ := set $c "resources" (deepCopy .) }}{{ end }}
{{- with $v.extraContainerSpecs }}{{ $c = mergeOverwrite $c (deepCopy .) }}{{ end }}
{{- $_ := set $spec "containers" (list $c) }}
{{- with $v.extraPodSpecs }}{{ $spec = mergeOverwrite $spec (deepCopy .) }}{{ end }}
{{- toYaml $spec }}
{{- end }}
