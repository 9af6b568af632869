{{/* Names ------------------------------------------------------------------------------------------------ */}}
{{- define "fulcrum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fulcrum.fullname" -}}
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

{{- define "fulcrum.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fulcrum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fulcrum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fulcrum.labels" -}}
helm.sh/chart: {{ include "fulcrum.chart" . }}
{{ include "fulcrum.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fulcrum
{{- end }}

{{- define "fulcrum.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fulcrum.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fulcrum.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Operator settings ---------------------------------------------------------------------------------- */}}

{{/* The namespace of build Jobs and build records. */}}
{{- define "fulcrum.buildNamespace" -}}
{{- default .Release.Namespace .Values.build.namespace }}
{{- end }}

{{/* Namespaced mode: the namespaces whose ModelDeployments the operator serves, in a stable order, as a JSON
list (build Jobs and records are watched in the build namespace whatever this says). Cluster-wide mode: []. */}}
{{- define "fulcrum.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- .Values.watchNamespaces | uniq | toJson }}
{{- else }}
{{- list | toJson }}
{{- end }}
{{- end }}

{{/* `--repository`: s3://bucket/prefix, pvc://claim or hostpath:///dir. */}}
{{- define "fulcrum.repository" -}}
{{- $r := .Values.repository }}
{{- if eq $r.kind "hostPath" }}
{{- printf "hostpath://%s" (required "repository.hostPath is required when repository.kind is hostPath" $r.hostPath) }}
{{- else if eq $r.kind "pvc" }}
{{- printf "pvc://%s" (required "repository.pvc.claimName is required when repository.kind is pvc" $r.pvc.claimName) }}
{{- else }}
{{- required "repository.s3.uri is required: the bucket and prefix builds publish to, e.g. --set repository.s3.uri=s3://ml-models/fulcrum (or set repository.kind to pvc)" $r.s3.uri }}
{{- end }}
{{- end }}

{{/* The Secret with the build credentials of kind s3 ("" when none). */}}
{{- define "fulcrum.repositorySecret" -}}
{{- $s3 := .Values.repository.s3 }}
{{- if eq .Values.repository.kind "s3" }}
{{- if $s3.secretName }}{{ $s3.secretName }}{{ else if $s3.createSecret }}{{ include "fulcrum.fullname" . }}-repository{{ end }}
{{- end }}
{{- end }}

{{- define "fulcrum.metricsSource" -}}
{{- if eq .Values.metrics.source "prometheus" }}
{{- printf "prometheus=%s" (required "metrics.prometheusUrl is required when metrics.source is prometheus" .Values.metrics.prometheusUrl) }}
{{- else }}
{{- .Values.metrics.source }}
{{- end }}
{{- end }}

{{/* RBAC ---------------------------------------------------------------------------------------------------
Exactly what the operator sends, no wildcards (tests/e2e/test_chart.py proves each verb is used).
"fulcrum.rules.models": everywhere ModelDeployments live (ClusterRole, or a Role per watched namespace).
The operator lists and watches the kinds of fulcrum.handlers.WATCHES; the reconciler server-side applies
Deployments, Services, PodDisruptionBudgets and each ModelDeployment's routing ConfigMap (PATCH, plus create when
the apply creates the object), deletes Deployments of tiers or pools it left, merge-patches status and posts
Events. The control loop scrapes the ready Triton pods it finds in the EndpointSlices of Fulcrum's Services
(watched, never read directly). Its pods are watched for what only the kubelet reports (an image that cannot be
pulled, a Secret or claim that is missing, a repository download that fails), for build Jobs' results and by
routing, which points each serving pod's served model name at the routed tier (Triton's model-control API, on the
pod). Build Jobs run in the build namespace or, for a spec that names a Secret or claim of its own namespace
(spec.repository, a pvc:// source), in that namespace (pods can only use their own namespace's Secrets and
claims): there too they are watched, created, marked harvested (patch) and deleted to build again, and with object
storage each gets its upload form as a Secret it owns (create only, never read), so a team's namespace never needs
the platform's write keys. Creating Secrets adds no reach: whoever may create pods there may mount any Secret. */}}
{{- define "fulcrum.rules.models" -}}
- apiGroups: [fulcrum.dev]
  resources: [modeldeployments]
  verbs: [list, watch]
- apiGroups: [fulcrum.dev]
  resources: [modeldeployments/status]
  verbs: [patch]
{{- if .Values.rbac.ownerReferencesPermissionEnforcement }}
- apiGroups: [fulcrum.dev]
  resources: [modeldeployments/finalizers]
  verbs: [update]
{{- end }}
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, create, patch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, watch, create, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if eq .Values.repository.kind "s3" }}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
{{- end }}
{{- end }}

{{/* "fulcrum.rules.build": the build namespace only. Build Jobs and records are listed and watched there in
namespaced mode, and so are build pods (cluster-wide, the ClusterRole's watches of every namespace already see
them, and an unused grant is refused by the e2e verb audit). Jobs are created; build pods are watched (what the
kubelet reports) and a finished one's termination message read; the record ConfigMap is created and the Job
marked harvested (patch); a Job is deleted to build again (a retry, or its record deleted). Garbage collection
marks records that fell out of use (patch), deletes them after the retention and, for a claim or node
directory, removes their repository with a Job. With object storage, each build Job's upload form (a signed POST
policy for its own key) is created as a Secret the Job owns: create only, never read. */}}
{{- define "fulcrum.rules.build" -}}
{{- $namespaced := gt (len (include "fulcrum.watchNamespaces" . | fromJsonArray)) 0 }}
{{- $watch := ternary "list, watch, " "" $namespaced }}
- apiGroups: [batch]
  resources: [jobs]
  verbs: [{{ $watch }}create, patch, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [{{ $watch }}create, patch, delete]
{{- if $namespaced }}
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
{{- end }}
{{- if eq .Values.repository.kind "s3" }}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
{{- end }}
{{- end }}

{{/* "fulcrum.rules.leader": the release namespace only. The leader election Lease: created once (create cannot
be limited to a name), then read and renewed by name. */}}
{{- define "fulcrum.rules.leader" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [{{ include "fulcrum.fullname" . }}]
  verbs: [get, update]
{{- end }}
