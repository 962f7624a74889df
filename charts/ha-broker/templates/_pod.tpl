{{/*
Pod spec of a broker client: the image, probes, security contexts, termination grace period, the spec
itself (env, volumes and scheduling come from _client-env.tpl, _volumes.tpl and _scheduling.tpl), and the spec
with snyk-broker-helm's pod and container values applied to it.
*/}}

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
{{- with concat ($v.imagePullSecrets | default list) ($v.image.pullSecrets | default list) }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $v.hostAliases }}
hostAliases:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- /* snyk-universal-broker-helm's podSecurityContext carries an enabled switch; the pod keeps this chart's context. */}}
  {{- include "ha-broker.securityContext" (dict "root" $root "ctx" (omit $v.podSecurityContext "enabled")) | nindent 2 }}
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
    {{- $envFrom := list }}
    {{- if include "ha-broker.universal" $root }}
    {{- $envFrom = append $envFrom (dict "secretRef" (dict "name" (include "ha-broker.platformSecretName" $root))) }}
    {{- if and (include "ha-broker.hasCreds" $root) (ne (include "ha-broker.credsSecretName" $root) (include "ha-broker.platformSecretName" $root)) }}
    {{- $envFrom = append $envFrom (dict "secretRef" (dict "name" (include "ha-broker.credsSecretName" $root))) }}
    {{- end }}
    {{- end }}
    {{- $envFrom = concat $envFrom ($v.extraEnvFrom | default list) }}
    {{- range $v.extraEnvVarsCM }}
    {{- $envFrom = append $envFrom (dict "configMapRef" (dict "name" (tpl . $root))) }}
    {{- end }}
    {{- range $v.extraEnvVarsSecret }}
    {{- $envFrom = append $envFrom (dict "secretRef" (dict "name" (tpl . $root))) }}
    {{- end }}
    {{- if include "ha-broker.hasCommitSigning" $root }}
    {{- $envFrom = append $envFrom (dict "secretRef" (dict "name" (include "ha-broker.commitSigningSecretName" $root))) }}
    {{- end }}
    {{- with $envFrom }}
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
{{- /* snyk-universal-broker-helm writes its probes as {enabled, path, config} under livenessProbe/readinessProbe:
the same switch and timings as snyk-broker-helm's brokerLivenessProbe (the path stays /livez or /readyz). */}}
{{- $ub := pick . "enabled" "path" "config" }}
{{- $snyk = merge (dict) ($snyk | default dict) $ub }}
{{- $p := include "ha-broker.probe" (dict "root" $root "probe" (omit . "enabled" "path" "config") "snyk" $snyk) }}
{{- if $p }}{{ $_ := set $c $name ($p | fromYaml) }}{{ else }}{{ $_ := unset $c $name }}{{ end }}
{{- end }}
{{- end }}
{{- with $v.brokerResources }}{{ $_ := set $c "resources" (deepCopy .) }}{{ end }}
{{- with $v.extraContainerSpecs }}{{ $c = mergeOverwrite $c (deepCopy .) }}{{ end }}
{{- $_ := set $spec "containers" (list $c) }}
{{- with $v.extraPodSpecs }}{{ $spec = mergeOverwrite $spec (deepCopy .) }}{{ end }}
{{- toYaml $spec }}
{{- end }}
