{{/*
snyk-broker-helm's values: the SCM type and its variables, credentials, accept switches, and the values
this chart refuses. Facts about snyk-broker-helm are from its templates (_scmConfig.tpl, broker_deployment.yaml,
secrets.yaml); docs/migrating.md maps every value.
*/}}

{{- define "ha-broker.scmType" -}}
{{- .Values.scmType | default "github-com" }}
{{- end }}

{{/*
"-<release>", or nothing with disableSuffixes: the suffix snyk-broker-helm gives its object names.
*/}}
{{- define "ha-broker.snykSuffix" -}}
{{- if not (eq (toString .Values.disableSuffixes) "true") }}-{{ .Release.Name }}{{ end }}
{{- end }}

{{/*
True for a switch given as true or "true" (snyk-broker-helm writes most of them as strings).
*/}}
{{- define "ha-broker.truthy" -}}
{{- if has (toString . | lower) (list "true" "1" "yes") }}true{{ end }}
{{- end }}

{{/*
True when the user brings accept rules (ours: accept, existingConfigMap; Snyk's: acceptJson, acceptJsonFile);
the template's rules of scmType are used otherwise.
*/}}
{{- define "ha-broker.customAccept" -}}
{{- if or .Values.accept .Values.existingConfigMap .Values.acceptJson .Values.acceptJsonFile }}true{{ end }}
{{- end }}

{{/*
Text of the chart's accept.json ConfigMap: accept (JSON string or object), acceptJson, or the chart file named by
acceptJsonFile.
*/}}
{{- define "ha-broker.acceptText" -}}
{{- $v := .Values }}
{{- $given := list }}
{{- range $k := list "accept" "acceptJson" "acceptJsonFile" "existingConfigMap" }}
{{- if index $v $k }}{{ $given = append $given $k }}{{ end }}
{{- end }}
{{- if gt (len $given) 1 }}
{{- fail (printf "give the accept rules one way only, got %s" (join " and " $given)) }}
{{- end }}
{{- if $v.acceptJson }}
{{- $v.acceptJson }}
{{- else if $v.acceptJsonFile }}
{{- $text := .Files.Get $v.acceptJsonFile }}
{{- if not $text }}
{{- fail (printf "acceptJsonFile %q is not a file inside the chart directory; pass the file itself with --set-file acceptJson=%s" $v.acceptJsonFile $v.acceptJsonFile) }}
{{- end }}
{{- $text }}
{{- else if kindIs "string" $v.accept }}
{{- $v.accept }}
{{- else if $v.accept }}
{{- toPrettyJson $v.accept }}
{{- end }}
{{- end }}

{{/*
PEM text of a value that is either PEM or (snyk-broker-helm's form) the name of a file inside the chart
directory. Fails, naming the value, on anything else. Call with (dict "root" $ "name" "caCert" "value" ... "kind" "CERTIFICATE").
*/}}
{{- define "ha-broker.pemValue" -}}
{{- $val := toString .value }}
{{- $pem := "" }}
{{- if contains "-----BEGIN " $val }}
{{- $pem = $val }}
{{- else }}
{{- $file := .root.Files.Get $val }}
{{- if not $file }}
{{- fail (printf "%s: %q is neither PEM text (-----BEGIN ...-----) nor a file inside the chart directory. snyk-broker-helm reads %s as a file name inside its chart; here pass the PEM itself, e.g. --set-file %s=%s" .name $val .name (ternary "caCertFile" .name (eq .name "caCert")) $val) }}
{{- end }}
{{- $pem = $file }}
{{- end }}
{{- if not (regexMatch "-----BEGIN [A-Z0-9 ]+-----[\\s\\S]*-----END [A-Z0-9 ]+-----" $pem) }}
{{- fail (printf "%s is not PEM: expected -----BEGIN %s----- ... -----END %s-----" .name .kind .kind) }}
{{- end }}
{{- $pem }}
{{- end }}

{{/*
An env entry whose value comes from a Secret, and the chart Secret's data for it, as JSON
{"env": {...}, "data": {...}} (both may be absent). Call with (dict "root" $ "name" ENV "value" inline
"secret" {name,key} "snykName" "snykKey" "external" bool): an existing Secret named by the value wins; with
useExternalSecrets and external=true, snyk-broker-helm's default Secret name and key; else the inline value goes in
the chart's Secret under the variable's name.
*/}}
{{- define "ha-broker.secretEnv" -}}
{{- $s := .secret | default dict }}
{{- $out := dict }}
{{- if $s.name }}
{{- $_ := set $out "env" (dict "name" .name "valueFrom" (dict "secretKeyRef" (dict "name" $s.name "key" ($s.key | default .snykKey)))) }}
{{- else if and .root.Values.useExternalSecrets .external }}
{{- $_ := set $out "env" (dict "name" .name "valueFrom" (dict "secretKeyRef" (dict "name" .snykName "key" .snykKey))) }}
{{- else if not (eq (toString (.value | default "")) "") }}
{{- $_ := set $out "env" (dict "name" .name "valueFrom" (dict "secretKeyRef" (dict "name" (include "ha-broker.fullname" .root) "key" .name))) }}
{{- $_ := set $out "data" (dict .name (toString .value)) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
The SCM part of the client's environment and the chart Secret's credentials, as JSON {"env": [...], "data": {...}}:
exactly the variables snyk-broker-helm sets for scmType (from Secrets where it uses Secrets), plus BROKER_SCM_TYPE,
which makes the client load the template's rules and variable defaults. Empty plain values are left out, so the
template's default applies (snyk-broker-helm sets them empty).
*/}}
{{- define "ha-broker.scm" -}}
{{- $root := . }}
{{- $v := .Values }}
{{- $type := include "ha-broker.scmType" . }}
{{- $sfx := include "ha-broker.snykSuffix" . }}
{{- $custom := include "ha-broker.customAccept" . }}
{{- $env := list (dict "name" "BROKER_SCM_TYPE" "value" $type) }}
{{- $data := dict }}
{{- $plain := list }}
{{- $secrets := list }}
{{- $problems := list }}

{{- /* The SCM credential: one value, its variable depends on the type (snyk-broker-helm's scmToken helper). */}}
{{- $credVar := get (dict
  "github-com" "GITHUB_TOKEN" "github-enterprise" "GITHUB_TOKEN" "gitlab" "GITLAB_TOKEN"
  "bitbucket-server" "BITBUCKET_PASSWORD" "bitbucket-server-bearer-auth" "BITBUCKET_PAT"
  "azure-repos" "AZURE_REPOS_TOKEN" "jira" "JIRA_PASSWORD" "jira-bearer-auth" "JIRA_PAT") $type }}
{{- $cred := coalesce $v.scmToken $v.bitbucketPassword $v.bitbucketPat $v.azureReposToken $v.jiraPassword $v.jiraPat | default "" }}
{{- $poolType := has $type (list "github-com" "github-enterprise" "gitlab") }}
{{- $haveCred := false }}
{{- if $credVar }}
{{- if not (and $v.scmTokenPool $v.useExternalSecretScmTokenPool) }}
{{- $secrets = append $secrets (dict "name" $credVar "value" $cred "secret" $v.externalCredentialSecret "snykName" (printf "%s-token%s" $type $sfx) "snykKey" (printf "%s-token-key" $type) "external" true) }}
{{- $haveCred = or $cred $v.externalCredentialSecret.name $v.useExternalSecrets }}
{{- end }}
{{- if and $poolType (or $v.scmTokenPool $v.useExternalSecretScmTokenPool $v.scmTokenPoolSecret.name) }}
{{- $poolVar := printf "%s_TOKEN_POOL" (regexReplaceAll "-.*" $type "" | upper) }}
{{- $poolSecret := $v.scmTokenPoolSecret }}
{{- if and $v.useExternalSecretScmTokenPool (not $poolSecret.name) }}
{{- $poolSecret = dict "name" (printf "%s-token-pool%s" $type $sfx) "key" "" }}
{{- end }}
{{- $secrets = append $secrets (dict "name" $poolVar "value" $v.scmTokenPool "secret" $poolSecret "snykName" "" "snykKey" (printf "%s-token-pool-key" $type) "external" false) }}
{{- $haveCred = true }}
{{- end }}
{{- end }}

{{- if eq $type "github-enterprise" }}
{{- $plain = list (list "GITHUB" $v.github) (list "GITHUB_API" $v.githubApi) (list "GITHUB_GRAPHQL" $v.githubGraphQl) }}
{{- if not $v.github }}{{ $problems = append $problems "github (the GitHub Enterprise host, without https://)" }}{{ end }}
{{- else if eq $type "gitlab" }}
{{- $plain = list (list "GITLAB" $v.gitlab) }}
{{- if not $v.gitlab }}{{ $problems = append $problems "gitlab (the GitLab host, without https://)" }}{{ end }}
{{- else if eq $type "bitbucket-server" }}
{{- $plain = list (list "BITBUCKET_USERNAME" $v.bitbucketUsername) (list "BITBUCKET" $v.bitbucket) (list "BITBUCKET_API" $v.bitbucketApi) }}
{{- if not $v.bitbucket }}{{ $problems = append $problems "bitbucket (the Bitbucket Server host, without https://)" }}{{ end }}
{{- if not $v.bitbucketUsername }}{{ $problems = append $problems "bitbucketUsername" }}{{ end }}
{{- else if eq $type "bitbucket-server-bearer-auth" }}
{{- $plain = list (list "BITBUCKET" $v.bitbucket) (list "BITBUCKET_API" $v.bitbucketApi) }}
{{- if not $v.bitbucket }}{{ $problems = append $problems "bitbucket (the Bitbucket Server host, without https://)" }}{{ end }}
{{- else if eq $type "azure-repos" }}
{{- $plain = list (list "AZURE_REPOS_ORG" $v.azureReposOrg) (list "AZURE_REPOS_HOST" $v.azureReposHost) }}
{{- if not $v.azureReposOrg }}{{ $problems = append $problems "azureReposOrg (the Azure DevOps organization)" }}{{ end }}
{{- else if eq $type "jira" }}
{{- $plain = list (list "JIRA_USERNAME" $v.jiraUsername) (list "JIRA_HOSTNAME" $v.jiraHostname) }}
{{- if not $v.jiraHostname }}{{ $problems = append $problems "jiraHostname (the Jira host, without https://)" }}{{ end }}
{{- if not $v.jiraUsername }}{{ $problems = append $problems "jiraUsername" }}{{ end }}
{{- else if eq $type "jira-bearer-auth" }}
{{- $plain = list (list "JIRA_HOSTNAME" $v.jiraHostname) }}
{{- if not $v.jiraHostname }}{{ $problems = append $problems "jiraHostname (the Jira host, without https://)" }}{{ end }}
{{- else if eq $type "artifactory" }}
{{- $secrets = append $secrets (dict "name" "ARTIFACTORY_URL" "value" $v.artifactoryUrl "secret" $v.artifactoryUrlSecret "snykName" (printf "artifactory-url%s" $sfx) "snykKey" "artifactory-url" "external" true) }}
{{- if not (or $v.artifactoryUrl $v.artifactoryUrlSecret.name $v.useExternalSecrets) }}{{ $problems = append $problems "artifactoryUrl (or artifactoryUrlSecret.name)" }}{{ end }}
{{- else if has $type (list "nexus" "nexus2") }}
{{- if and $v.nexusUrlSecret.key (eq $v.nexusUrlSecret.key $v.baseNexusUrlSecret.key) }}
{{- fail "Secret keys for nexusUrlSecret and baseNexusUrlSecret must be unique" }}
{{- end }}
{{- $secrets = append $secrets (dict "name" "BASE_NEXUS_URL" "value" $v.baseNexusUrl "secret" $v.baseNexusUrlSecret "snykName" (printf "nexus-base-nexus-url%s" $sfx) "snykKey" "nexus-base-nexus-url" "external" true) }}
{{- $secrets = append $secrets (dict "name" "NEXUS_URL" "value" $v.nexusUrl "secret" $v.nexusUrlSecret "snykName" (printf "nexus-nexus-url%s" $sfx) "snykKey" "nexus-nexus-url" "external" true) }}
{{- if not (or $v.baseNexusUrl $v.baseNexusUrlSecret.name $v.useExternalSecrets) }}{{ $problems = append $problems "baseNexusUrl (or baseNexusUrlSecret.name)" }}{{ end }}
{{- else if eq $type "apprisk" }}
{{- $plain = list (list "SONARQUBE_HOST_URL" $v.sonarqubeHostUrl) (list "CHECKMARX" $v.checkmarx) }}
{{- if $v.sonarqubeHostUrl }}
{{- $secrets = append $secrets (dict "name" "SONARQUBE_API_TOKEN" "value" $v.sonarqubeApiToken "secret" $v.sonarqubeApiTokenSecret "snykName" (printf "apprisk-sonarqube-api-token%s" $sfx) "snykKey" "apprisk-sonarqube-api-token" "external" true) }}
{{- end }}
{{- if not (or $v.sonarqubeHostUrl $v.checkmarx) }}
{{- fail "scmType apprisk needs sonarqubeHostUrl or checkmarx (or both), as in snyk-broker-helm" }}
{{- end }}
{{- end }}
{{- if has $type (list "artifactory" "nexus" "nexus2") }}
{{- if or $v.brokerClientValidationUrl $v.brokerClientValidationUrlSecret.name }}
{{- $secrets = append $secrets (dict "name" "BROKER_CLIENT_VALIDATION_URL" "value" $v.brokerClientValidationUrl "secret" $v.brokerClientValidationUrlSecret "snykName" "" "snykKey" (printf "%s-broker-client-validation-url" $type) "external" false) }}
{{- end }}
{{- end }}

{{- if and $credVar (not $haveCred) }}
{{- $problems = append $problems (printf "scmToken (or the credential value for %s, or externalCredentialSecret.name): the client's %s" $type $credVar) }}
{{- end }}
{{- if and $problems (not $custom) }}
{{- fail (printf "scmType %s needs %s (with no accept file the chart runs Snyk's %s template, which uses them)" $type (join ", " $problems) $type) }}
{{- end }}

{{- range $plain }}
{{- if not (eq (toString (index . 1 | default "")) "") }}
{{- $env = append $env (dict "name" (index . 0) "value" (toString (index . 1))) }}
{{- end }}
{{- end }}
{{- range $secrets }}
{{- $r := include "ha-broker.secretEnv" (merge (dict "root" $root) .) | fromJson }}
{{- with $r.env }}{{ $env = append $env . }}{{ end }}
{{- with $r.data }}{{ $data = merge $data . }}{{ end }}
{{- end }}

{{- /* Accept switches: snyk-broker-helm turns on Code, IaC and AppRisk rules with the template's rules of these types. */}}
{{- $accept := dict }}
{{- if and (not $custom) (has $type (list "github-com" "github-enterprise" "bitbucket-server" "bitbucket-server-bearer-auth" "gitlab" "azure-repos")) }}
{{- if not (include "ha-broker.truthy" $v.disableAutoAcceptRules) }}
{{- $_ := set $accept "ACCEPT_CODE" "true" }}
{{- $_ := set $accept "ACCEPT_IAC" "tf,yaml,yml,json,tpl" }}
{{- end }}
{{- if include "ha-broker.truthy" $v.enableAppRisk }}
{{- $_ := set $accept "ACCEPT_APPRISK" "true" }}
{{- end }}
{{- end }}
{{- range $key, $var := dict "acceptCode" "ACCEPT_CODE" "acceptIac" "ACCEPT_IAC" "acceptGit" "ACCEPT_GIT" "acceptLargeManifests" "ACCEPT_LARGE_MANIFESTS" "acceptCustomPrTemplates" "ACCEPT_CUSTOM_PR_TEMPLATES" "acceptEssentials" "ACCEPT_ESSENTIALS" }}
{{- $val := index $v $key }}
{{- if not (eq (toString ($val | default "")) "") }}
{{- $_ := set $accept $var (toString $val) }}
{{- end }}
{{- end }}
{{- range $name := list "ACCEPT_CODE" "ACCEPT_IAC" "ACCEPT_APPRISK" "ACCEPT_GIT" "ACCEPT_LARGE_MANIFESTS" "ACCEPT_CUSTOM_PR_TEMPLATES" "ACCEPT_ESSENTIALS" }}
{{- if hasKey $accept $name }}
{{- $env = append $env (dict "name" $name "value" (get $accept $name)) }}
{{- end }}
{{- end }}
{{- toJson (dict "env" $env "data" $data) }}
{{- end }}

{{/*
snyk-broker-helm values for Snyk's side images (the code agent and the container registry agent) and for
autoscaling: a clear failure instead of a silently different deployment.
*/}}
{{- define "ha-broker.refuseSnykSideImages" -}}
{{- $v := .Values }}
{{- $side := "ha-broker has no code agent or container registry agent; keep snyk-broker-helm for those (see docs/migrating.md)" }}
{{- if eq (toString $v.scmType) "container-registry-agent" }}
{{- fail (printf "scmType container-registry-agent needs Snyk's container registry agent image (snyk/container-registry-agent) beside the broker: %s" $side) }}
{{- end }}
{{- if include "ha-broker.truthy" $v.enableCodeAgent }}
{{- fail (printf "enableCodeAgent needs Snyk's code agent image (snyk/code-agent) beside the broker: %s" $side) }}
{{- end }}
{{- range $key := list "crType" "crBase" "crUsername" "crPassword" "crRoleArn" "crRegion" "crExternalId" "crToken" }}
{{- if index $v $key }}
{{- fail (printf "%s configures Snyk's container registry agent (scmType container-registry-agent): %s" $key $side) }}
{{- end }}
{{- end }}
{{- range $key := list "snykToken" "upstreamUrlCodeAgent" "gitClientUrl" }}
{{- if index $v $key }}
{{- fail (printf "%s configures Snyk's code agent (enableCodeAgent): %s" $key $side) }}
{{- end }}
{{- end }}
{{- if and $v.snykTokenSecret $v.snykTokenSecret.name }}
{{- fail (printf "snykTokenSecret configures Snyk's code agent (enableCodeAgent): %s" $side) }}
{{- end }}
{{- if and $v.autoscaling (include "ha-broker.truthy" $v.autoscaling.enabled) }}
{{- fail "autoscaling.enabled: ha-broker runs each client as its own Deployment with a stable client id, which a HorizontalPodAutoscaler cannot scale; set replicaCount (2 to 4) with highAvailabilityMode.enabled=true instead" }}
{{- end }}
{{- end }}
