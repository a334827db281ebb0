{{/* Names, labels and the RBAC rules shared by the templates. */}}

{{- define "movieapp-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name: the release name, plus the chart name unless already in it. */}}
{{- define "movieapp-operator.fullname" -}}
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

{{- define "movieapp-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's Pods: never change them (Deployment selectors are immutable). */}}
{{- define "movieapp-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "movieapp-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "movieapp-operator.labels" -}}
helm.sh/chart: {{ include "movieapp-operator.chart" . }}
{{ include "movieapp-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: movieapp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "movieapp-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "movieapp-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "movieapp-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "movieapp-operator.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{- define "movieapp-operator.metricsService" -}}
{{- printf "%s-metrics" (include "movieapp-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* PromQL label matchers selecting this release's scrape targets (prometheus-operator sets job = Service name). */}}
{{- define "movieapp-operator.promSelector" -}}
job="{{ include "movieapp-operator.metricsService" . }}",namespace="{{ .Release.Namespace }}"
{{- end }}

{{/*
The operator's permissions over MovieApps and their children: exactly the
requests operator/src makes (tests/delivery/rbac-e2e.sh proves them against a
real API server and fails on any denied request). Read verbs come as the set
get/list/watch, since list already reveals everything get does; write verbs are
only those the code issues. No wildcards.
*/}}
{{- define "movieapp-operator.managerRules" -}}
# The watched resource: watch/list for the controller, patch to add and remove
# the movieapp.io/cleanup finalizer (merge patch).
- apiGroups: ["movieapp.io"]
  resources: ["movieapps"]
  verbs: ["get", "list", "watch", "patch"]
# Status is written with a merge patch of the status subresource.
- apiGroups: ["movieapp.io"]
  resources: ["movieapps/status"]
  verbs: ["get", "patch"]
# Children carry ownerReferences with blockOwnerDeletion, which clusters with
# the OwnerReferencesPermissionEnforcement admission plugin (OpenShift) allow
# only to those who may update the owner's finalizers.
- apiGroups: ["movieapp.io"]
  resources: ["movieapps/finalizers"]
  verbs: ["update"]
# Children: watched (label-selected caches), created and updated by
# server-side apply (a PATCH that creates needs create too), and the optional
# ones deleted when the spec drops them: the HPA, the PDB, the NetworkPolicy
# (spec.worker.networkPolicy.enabled: false) and the exports ConfigMap
# (spec.exports removed or renamed).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Secrets: a metadata-only watch (to react when the TMDB Secret appears), a
# get of the referenced TMDB Secret to check its key, and create for the
# generated <name>-auth signing-key Secret (garbage-collected with its owner).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create"]
# Events through the operator's recorder (operator/src/recorder.rs), events.k8s.io/v1 only
# (create, then patch to count repeats).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
Where the MovieApp admission policies apply: with watchNamespaces, only the
MovieApps of those namespaces, the ones this release manages, so that two
releases on one cluster (each with its own namespaces and its own
admission.workerRoleArns) do not judge each other's MovieApps; without, every
namespace, as the operator then manages every MovieApp.
*/}}
{{- define "movieapp-operator.admissionScope" -}}
{{- with .Values.watchNamespaces -}}
matchResources:
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values:
          {{- toYaml (uniq .) | nindent 10 }}
{{- end }}
{{- end }}
