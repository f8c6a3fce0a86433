{{/*
Chart name, overridable.
*/}}
{{- define "classifier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Object-name prefix: the release name, plus the chart name unless the release name contains it.
Truncated so that "-gateway" still fits the 63-character limit.
*/}}
{{- define "classifier.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
chart label value: name-version.
*/}}
{{- define "classifier.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component. Usage: include "classifier.selectorLabels" (dict "ctx" $ "component" "silo")
*/}}
{{- define "classifier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "classifier.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Standard labels of one component. Usage: include "classifier.labels" (dict "ctx" $ "component" "silo")
*/}}
{{- define "classifier.labels" -}}
helm.sh/chart: {{ include "classifier.chart" .ctx }}
{{ include "classifier.selectorLabels" . }}
app.kubernetes.io/part-of: {{ include "classifier.name" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/*
Labels of objects that belong to no single component (alert rules, dashboards).
*/}}
{{- define "classifier.commonLabels" -}}
helm.sh/chart: {{ include "classifier.chart" . }}
app.kubernetes.io/name: {{ include "classifier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: {{ include "classifier.name" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The Redis connection string for membership: the chart's Redis, or the one given.
*/}}
{{- define "classifier.redisConnectionString" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s-redis:6379" (include "classifier.fullname" .) }}
{{- else }}
{{- required "redis.enabled is false: set cluster.redisConnectionString to your Redis" .Values.cluster.redisConnectionString }}
{{- end }}
{{- end }}

{{/*
Environment both roles share: downward API and cluster membership.
*/}}
{{- define "classifier.clusterEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: Cluster__Clustering
  value: redis
- name: Cluster__RedisConnectionString
  value: {{ include "classifier.redisConnectionString" . | quote }}
- name: Cluster__ServiceId
  value: {{ .Values.cluster.serviceId | quote }}
- name: Cluster__ClusterId
  value: {{ .Values.cluster.clusterId | quote }}
- name: Cluster__Tls__Enabled
  value: {{ .Values.clusterTls.enabled | quote }}
- name: Cluster__Tls__CertificatePath
  value: /etc/classifier/tls/tls.crt
- name: Cluster__Tls__KeyPath
  value: /etc/classifier/tls/tls.key
- name: Cluster__Tls__CaPath
  value: /etc/classifier/tls/ca.crt
{{- end }}

{{/*
The Secret holding the cluster TLS certificate: the one given, or the one cluster-tls.yaml generates.
*/}}
{{- define "classifier.clusterTlsSecret" -}}
{{- .Values.clusterTls.existingSecret | default (printf "%s-cluster-tls" (include "classifier.fullname" .)) }}
{{- end }}

{{/*
Volume and mount of the cluster TLS Secret, on silos and gateways alike, where Cluster__Tls__*Path point.
Not optional: with TLS on, a pod without its certificate could join no one, so it waits for the Secret.
*/}}
{{- define "classifier.clusterTlsVolume" -}}
- name: cluster-tls
  secret:
    secretName: {{ include "classifier.clusterTlsSecret" . }}
{{- end }}

{{- define "classifier.clusterTlsVolumeMount" -}}
- name: cluster-tls
  mountPath: /etc/classifier/tls
  readOnly: true
{{- end }}

{{/*
Peers that may reach the metrics and probe ports: networkPolicy.metricsFrom, or every pod in the cluster.
*/}}
{{- define "classifier.metricsFrom" -}}
{{- if .Values.networkPolicy.metricsFrom }}
{{- toYaml .Values.networkPolicy.metricsFrom }}
{{- else }}
- namespaceSelector: {}
{{- end }}
{{- end }}

{{/*
Pod and container security settings every pod of the chart uses (the "restricted" Pod Security Standard).
*/}}
{{- define "classifier.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1654
runAsGroup: 1654
fsGroup: 1654
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "classifier.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}
