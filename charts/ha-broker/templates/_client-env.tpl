{{/*
Environment of a broker client container: its stable client id, the TLS switch, and the env list itself
(the chart's variables, then env and extraEnv replacing entries of the same name).
*/}}

{{/*
NODE_TLS_REJECT_UNAUTHORIZED=0 as snyk-broker-helm sets it: tlsRejectUnauthorized "0" without a CA, or
disableCaCertTrust with one; or snyk-universal-broker-helm's disableAllCertificateTrust, with or without a CA. Unlike Snyk's chart, only "0", 0 and false turn the checks off (any other string
turned them off there too).
*/}}
{{- define "ha-broker.tlsOff" -}}
{{- $ca := or .Values.caCert .Values.caCertFile }}
{{- $t := toString .Values.tlsRejectUnauthorized }}
{{- if or (and (not $ca) (has $t (list "0" "false"))) (and $ca .Values.disableCaCertTrust) .Values.disableAllCertificateTrust }}true{{ end }}
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
{{- $ub := include "ha-broker.universal" $root }}
{{- if $ub }}
{{- /* Universal Broker: DEPLOYMENT_ID, CLIENT_ID, CLIENT_SECRET and the credential references come with envFrom. */}}
{{- $env = append $env (dict "name" "UNIVERSAL_BROKER_ENABLED" "value" "true") }}
{{- else }}
{{- $env = append $env (dict "name" "BROKER_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" (include "ha-broker.secretName" $root) "key" (include "ha-broker.secretTokenKey" $root)))) }}
{{- end }}
{{- $env = append $env (dict "name" "BROKER_SERVER_URL" "value" (include "ha-broker.brokerServerUrl" $root)) }}
{{- $env = append $env (dict "name" "BROKER_CLIENT_URL" "value" (include "ha-broker.brokerClientUrl" $root)) }}
{{- $env = append $env (dict "name" "BROKER_CLIENT_ID" "value" (include "ha-broker.clientId" .)) }}
{{- $env = append $env (dict "name" "PORT" "value" (include "ha-broker.port" $root)) }}
{{- $ha := include "ha-broker.ha" $root }}
{{- $env = append $env (dict "name" "BROKER_HA_MODE_ENABLED" "value" (ternary "true" "false" (eq $ha "true"))) }}
{{- /* Universal Broker: also the Snyk API of the OAuth token and the connections list, so always set. */}}
{{- if or $ha $ub }}
{{- $env = append $env (dict "name" "BROKER_DISPATCHER_BASE_URL" "value" (include "ha-broker.dispatcherUrl" $root)) }}
{{- end }}
{{- if $ha }}
{{- if $v.highAvailabilityMode.dispatcherUrlPrefix }}
{{- $env = append $env (dict "name" "DISPATCHER_URL_PREFIX" "value" $v.highAvailabilityMode.dispatcherUrlPrefix) }}
{{- end }}
{{- end }}
{{- if $ub }}
{{- $env = concat $env (include "ha-broker.universalAccepts" $root | fromJsonArray) }}
{{- else }}
{{- $env = concat $env (include "ha-broker.scm" $root | fromJson).env }}
{{- if include "ha-broker.hasAccept" $root }}
{{- $env = append $env (dict "name" "ACCEPT" "value" "/etc/ha-broker/accept/accept.json") }}
{{- end }}
{{- end }}
{{- $env = append $env (dict "name" "PREFLIGHT_CHECKS_ENABLED" "value" (ternary "true" "false" (eq (toString $v.preflightChecks.enabled) "true"))) }}
{{- $env = append $env (dict "name" "LOG_LEVEL" "value" $v.logLevel) }}
{{- $env = append $env (dict "name" "LOG_ENABLE_BODY" "value" (toString $v.logEnableBody)) }}
{{- $env = append $env (dict "name" "BROKER_HEALTHCHECK_PATH" "value" $v.healthCheckPath) }}
{{- $env = append $env (dict "name" "BROKER_SYSTEMCHECK_PATH" "value" $v.systemCheckPath) }}
{{- $env = append $env (dict "name" "BROKER_CLIENT_DRAIN_GRACE_MS" "value" (toString (mul (int $v.drainGraceSeconds) 1000))) }}
{{- /* Proxies: snyk-universal-broker-helm's proxySecret keys win over the plain values. */}}
{{- $ps := $v.proxySecret | default dict }}
{{- if and $ps.name $ps.httpProxyKey }}
{{- $env = append $env (dict "name" "HTTP_PROXY" "valueFrom" (dict "secretKeyRef" (dict "name" $ps.name "key" $ps.httpProxyKey))) }}
{{- else if $v.httpProxy }}
{{- $env = append $env (dict "name" "HTTP_PROXY" "value" $v.httpProxy) }}
{{- end }}
{{- if and $ps.name $ps.httpsProxyKey }}
{{- $env = append $env (dict "name" "HTTPS_PROXY" "valueFrom" (dict "secretKeyRef" (dict "name" $ps.name "key" $ps.httpsProxyKey))) }}
{{- else if $v.httpsProxy }}
{{- $env = append $env (dict "name" "HTTPS_PROXY" "value" $v.httpsProxy) }}
{{- end }}
{{- if and $ps.name $ps.noProxyKey }}
{{- $env = append $env (dict "name" "NO_PROXY" "valueFrom" (dict "secretKeyRef" (dict "name" $ps.name "key" $ps.noProxyKey))) }}
{{- else if $v.noProxy }}
{{- /* As snyk-broker-helm: no spaces, no scheme. */}}
{{- $env = append $env (dict "name" "NO_PROXY" "value" (regexReplaceAll "https?://" ($v.noProxy | nospace) "")) }}
{{- end }}
{{- if include "ha-broker.hasCa" $root }}
{{- $env = append $env (dict "name" "CA_CERT" "value" "/etc/ha-broker/ca/ca.pem") }}
{{- $env = append $env (dict "name" "NODE_EXTRA_CA_CERTS" "value" "/etc/ha-broker/ca/ca.pem") }}
{{- end }}
{{- if include "ha-broker.hasGithubApp" $root }}
{{- $app := $v.githubApp }}
{{- $env = append $env (dict "name" "GITHUB_APP_ID" "value" (toString $app.appId)) }}
{{- $env = append $env (dict "name" "GITHUB_APP_CLIENT_ID" "value" (required "githubApp.clientId is required with githubApp.appId" $app.clientId)) }}
{{- $env = append $env (dict "name" "GITHUB_APP_INSTALLATION_ID" "value" (toString (required "githubApp.installationId is required with githubApp.appId" $app.installationId))) }}
{{- /* github-cloud-app is GitHub.com: its API host is known. */}}
{{- $api := $app.api | default (ternary "api.github.com" "" (eq (include "ha-broker.scmType" $root) "github-cloud-app")) }}
{{- $env = append $env (dict "name" "GITHUB_API" "value" (required "githubApp.api is required with githubApp.appId (api.github.com, or ghe.example.com/api/v3)" $api)) }}
{{- $_ := required "githubApp.privateKeySecret.name is required with githubApp.appId (an existing Secret holding the App's PEM key)" $app.privateKeySecret.name }}
{{- $env = append $env (dict "name" "GITHUB_APP_PRIVATE_PEM_PATH" "value" "/etc/ha-broker/github-app/private-key.pem") }}
{{- end }}
{{- if include "ha-broker.hasTlsCert" $root }}
{{- $env = append $env (dict "name" "HTTPS_CERT" "value" "/etc/ha-broker/tls/tls.crt") }}
{{- $env = append $env (dict "name" "HTTPS_KEY" "value" "/etc/ha-broker/tls/tls.key") }}
{{- end }}
{{- if include "ha-broker.tlsOff" $root }}
{{- $env = append $env (dict "name" "NODE_TLS_REJECT_UNAUTHORIZED" "value" "0") }}
{{- end }}
{{- if include "ha-broker.truthy" $v.insecureDownstream }}
{{- $env = append $env (dict "name" "INSECURE_DOWNSTREAM" "value" "true") }}
{{- end }}
{{- if eq (toString $v.ipv6ConnectivityCheck.enabled) "false" }}
{{- /* As snyk-universal-broker-helm; the client has no IPv6 probe to turn off and says so in its log. */}}
{{- $env = append $env (dict "name" "IPV6_CONNECTIVITY_CHECK_ENABLED" "value" "false") }}
{{- end }}
{{- /* env (snyk-broker-helm's {name, value} list), snyk-universal-broker-helm's extraEnvVars, then extraEnv: each
replaces the chart's entry of its name. */}}
{{- $extra := list }}
{{- range (concat ($v.env | default list) ($v.extraEnvVars | default list)) }}
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
