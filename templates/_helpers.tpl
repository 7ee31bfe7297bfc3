{{/* Common names and labels of the kubeserve chart. */}}

{{/* Chart name, or nameOverride. */}}
{{- define "kubeserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name prefix: fullnameOverride, else the release name when it contains the chart name, else <release>-<name>. */}}
{{- define "kubeserve.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "kubeserve.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator pod; never change between upgrades. */}}
{{- define "kubeserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every object the chart renders. */}}
{{- define "kubeserve.labels" -}}
{{ include "kubeserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubeserve
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "kubeserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubeserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Operator image reference: repository, then @digest or :tag (default appVersion). */}}
{{- define "kubeserve.operatorImage" -}}
{{- $image := .Values.operator.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Serving runtime image reference (repository:tag, default tag appVersion). */}}
{{- define "kubeserve.runtimeImage" -}}
{{- $image := .Values.config.runtimeImage -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}

{{/* Name of the leader-election Lease (in the release namespace). */}}
{{- define "kubeserve.leaseName" -}}
{{- include "kubeserve.fullname" . -}}
{{- end -}}

{{/* RBAC rules of the operator's work on InferenceServices: the same cluster-wide (ClusterRole)
and per watched namespace (Role). Exactly the calls the operator makes, nothing more. */}}
{{- define "kubeserve.operatorRules" -}}
# The API it serves: kopf's index and events read specs; one status merge patch per pass
# (the spec is never written); get re-reads one after a status write answered 409.
- apiGroups: ["serving.kubeserve.io"]
  resources: ["inferenceservices"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["serving.kubeserve.io"]
  resources: ["inferenceservices/status"]
  verbs: ["patch"]
# Children it owns: list/watch feed kopf's indices, server-side apply needs create and
# patch, prune needs delete; nothing GETs or PUTs them.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes", "backendtlspolicies"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# spec.tls.certManager: cert-manager issues the serving certificate into a Secret.
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The canary's pods, for /metrics analysis. No Secrets: pods reference credentials by
# name and the kubelet mounts them.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# core/v1 Events about what it did (the operator's and kopf's).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Refuse value combinations that would let two operators act at once. */}}
{{- define "kubeserve.validate" -}}
{{- $op := .Values.operator -}}
{{- $le := $op.leaderElection -}}
{{- if not $le.enabled -}}
{{- if gt (int $op.replicas) 1 -}}
{{- fail "operator.replicas > 1 needs operator.leaderElection.enabled: without the Lease every replica would reconcile" -}}
{{- end -}}
{{- if eq (default "Recreate" $op.strategy.type) "RollingUpdate" -}}
{{- fail "operator.strategy RollingUpdate needs operator.leaderElection.enabled: old and new pod would both reconcile" -}}
{{- end -}}
{{- else if not (and (lt (float64 $le.retryPeriodSeconds) (float64 $le.renewDeadlineSeconds)) (lt (float64 $le.renewDeadlineSeconds) (float64 $le.leaseDurationSeconds))) -}}
{{- fail "operator.leaderElection needs retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds" -}}
{{- end -}}
{{- end -}}

{{/* Deployment strategy: operator.strategy, else RollingUpdate (new pod ready before the old
one stops; the Lease keeps them from acting together) with leader election, else Recreate. */}}
{{- define "kubeserve.strategy" -}}
{{- if .Values.operator.strategy -}}
{{- toYaml .Values.operator.strategy -}}
{{- else if .Values.operator.leaderElection.enabled -}}
type: RollingUpdate
rollingUpdate:
  maxSurge: 1
  maxUnavailable: 0
{{- else -}}
type: Recreate
{{- end -}}
{{- end -}}
