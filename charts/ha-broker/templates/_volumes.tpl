{{/*
Volumes of a broker client pod and their mounts: /tmp, and the accept file, CA, TLS certificate and GitHub App key when
the client has them (see _secrets.tpl), the .pem credential references of Universal Broker mode (one file each at
privateKeyMountPath, see _universal.tpl), then extraVolumes/extraVolumeMounts.
*/}}

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
{{- if include "ha-broker.hasGithubApp" . }}
- name: github-app
  mountPath: /etc/ha-broker/github-app
  readOnly: true
{{- end }}
{{- range (include "ha-broker.pemKeys" . | fromJsonArray) }}
- name: credential-pem
  mountPath: {{ printf "%s/%s" ($.Values.privateKeyMountPath | default "/home/node" | trimSuffix "/") . }}
  subPath: {{ . }}
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
{{- if include "ha-broker.hasGithubApp" . }}
- name: github-app
  secret:
    secretName: {{ .Values.githubApp.privateKeySecret.name }}
    defaultMode: 0400
    items:
      - key: {{ .Values.githubApp.privateKeySecret.key | default "private-key.pem" }}
        path: private-key.pem
{{- end }}
{{- with (include "ha-broker.pemKeys" . | fromJsonArray) }}
- name: credential-pem
  secret:
    secretName: {{ include "ha-broker.credsSecretName" $ }}
    defaultMode: 0400
    items:
      {{- range . }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
