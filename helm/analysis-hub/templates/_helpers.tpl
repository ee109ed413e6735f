{{/*
Labels on everything this chart creates (beside the Zero to JupyterHub chart's own).
*/}}
{{- define "analysis-hub.labels" -}}
app.kubernetes.io/name: analysis-hub
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end }}

{{/*
The labels Zero to JupyterHub puts on user pods (KubeSpawner's common labels
plus component), for our NetworkPolicies to select them.
*/}}
{{- define "analysis-hub.userPodSelector" -}}
component: singleuser-server
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/*
The tolerations Zero to JupyterHub gives user pods (scheduling.userPods.tolerations),
so our pullers reach the nodes dedicated to users. Same list as
analysis_hub.backends.kubernetes.translate.CHART_USER_TOLERATIONS.
*/}}
{{- define "analysis-hub.userTolerations" -}}
- key: hub.jupyter.org/dedicated
  operator: Equal
  value: user
  effect: NoSchedule
- key: hub.jupyter.org_dedicated
  operator: Equal
  value: user
  effect: NoSchedule
{{- end }}

{{/*
The hub's settings file: the admin's `settings` values plus what this chart
decides (backend, paths, the kubernetes section). Mounted at
/usr/local/etc/analysis-hub/settings/settings.yaml.
*/}}
{{- define "analysis-hub.settings" -}}
{{- $kubernetes := dict "images" .Values.images -}}
{{- if .Values.hadoop.enabled }}
{{- $_ := set $kubernetes "hadoop_configmap" "analysis-hub-hadoop" }}
{{- $_ := set $kubernetes "krb5_conf" (ne (.Values.hadoop.krb5Conf | default "") "") }}
{{- end }}
{{- if .Values.spark.kubernetesExecutors }}
{{- $_ := set $kubernetes "spark_service_account" .Values.spark.serviceAccountName }}
{{- end }}
{{- /* Pipeline run pods pull their image as z2jh's user pods do (unset: IfNotPresent, KubeSpawner's default). */}}
{{- with dig "singleuser" "image" "pullPolicy" "" (.Values.jupyterhub | default dict) }}
{{- $_ := set $kubernetes "image_pull_policy" . }}
{{- end }}
{{- $pullSecrets := include "analysis-hub.userPullSecrets" . | fromYamlArray }}
{{- if $pullSecrets }}
{{- $_ := set $kubernetes "image_pull_secrets" $pullSecrets }}
{{- end }}
{{- $teams := dict -}}
{{- $claims := dict -}}
{{- range $team, $folder := .Values.teams.folders }}
{{- $_ := set $teams $team (dict "read_only" (($folder | default dict).readOnly | default false)) }}
{{- $_ := set $claims $team (include "analysis-hub.teamClaim" $team) }}
{{- end }}
{{- if $teams }}
{{- $_ := set $kubernetes "team_claims" $claims }}
{{- end }}
{{- $chart := dict
  "backend" "kubernetes"
  "data_dir" "/srv/jupyterhub/analysis-hub"
  "catalog" "/usr/local/etc/analysis-hub/profiles"
  "kubernetes" $kubernetes
  "pipelines" (include "analysis-hub.pipelines.settings" . | fromYaml)
  "culler" (pick .Values.jupyterhub.cull "enabled" "timeout" "every")
-}}
{{- if $teams }}
{{- $_ := set $chart "teams" $teams }}
{{- end }}
{{- mustMergeOverwrite (deepCopy .Values.settings) $chart | toYaml }}
{{- end }}

{{/*
The pull secrets z2jh 4.4.0 gives user pods (KubeSpawner's image_pull_secrets), by
name, for pipeline run pods: `jupyterhub.singleuser.image.pullSecrets` and the global
`jupyterhub.imagePullSecrets` (plain names or {name: ...}), plus the Secret z2jh
creates from `jupyterhub.imagePullSecret` when `create` is on and
`automaticReferenceInjection` is not off; each once. As for the hub image (_hub-image.tpl).
*/}}
{{- define "analysis-hub.userPullSecrets" -}}
{{- $z2jh := .Values.jupyterhub | default dict -}}
{{- $given := concat (dig "singleuser" "image" "pullSecrets" list $z2jh | default list) ($z2jh.imagePullSecrets | default list) -}}
{{- $created := $z2jh.imagePullSecret | default dict -}}
{{- if and $created.create (dig "automaticReferenceInjection" true $created) -}}
{{- $given = append $given (printf "%simage-pull-secret" (include "analysis-hub.z2jhNamePrefix" .)) -}}
{{- end -}}
{{- $names := list -}}
{{- range $given -}}
{{- $name := . -}}
{{- if kindIs "map" . }}{{ $name = .name }}{{ end -}}
{{- if not (has $name $names) -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- toYaml $names -}}
{{- end }}

{{/* A team folder's PersistentVolumeClaim (the settings' kubernetes.team_claims name it for the hub). */}}
{{- define "analysis-hub.teamClaim" -}}analysis-hub-team-{{ . }}{{- end }}

{{/*
The Zero to JupyterHub resources we refer to, by z2jh 4.4.0's names (with its
default `fullnameOverride: ""`): the hub's Service and Deployment are `hub`
(or `<fullnameOverride>-hub`), its Secret the same name unless
`hub.existingSecret` replaces it.
*/}}
{{- define "analysis-hub.hubName" -}}
{{- $override := .Values.jupyterhub.fullnameOverride | default "" -}}
{{- if $override }}{{ $override }}-hub{{ else }}hub{{ end -}}
{{- end }}

{{- define "analysis-hub.hubSecretName" -}}
{{- .Values.jupyterhub.hub.existingSecret | default (include "analysis-hub.hubName" .) -}}
{{- end }}

{{/*
The labels z2jh puts on its own hub and proxy pods (pass the component).
*/}}
{{- define "analysis-hub.z2jhPodSelector" -}}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
{{- end }}

{{/*
The pipelines service: its Kubernetes Service is named `pipelines`, not
`analysis-hub-...`: Kubernetes gives every pod in the namespace (the hub's
too) variables named after each Service, and `ANALYSIS_HUB_*` ones would be
read as settings overrides. Its port is the pod's and the Service's.
*/}}
{{- define "analysis-hub.pipelines.serviceName" -}}pipelines{{- end }}
{{- define "analysis-hub.pipelines.port" -}}8080{{- end }}
{{- define "analysis-hub.pipelines.url" -}}
http://{{ include "analysis-hub.pipelines.serviceName" . }}:{{ include "analysis-hub.pipelines.port" . }}
{{- end }}
{{- define "analysis-hub.pipelines.prefix" -}}
{{- .Values.jupyterhub.hub.baseUrl | default "/" | trimSuffix "/" }}/services/pipelines/
{{- end }}
{{- define "analysis-hub.pipelines.selector" -}}
app.kubernetes.io/name: analysis-hub
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: pipelines
{{- end }}
{{/* The label on every pipeline run's pods (analysis_hub.backends.kubernetes.run_names.PIPELINE_RUN_LABEL; the run pods' NetworkPolicy selects it). */}}
{{- define "analysis-hub.pipelineRunSelector" -}}
analysis-hub/pipeline-run: "true"
{{- end }}
{{/* Where the service keeps its state (teams' git repositories) on its volume. */}}
{{- define "analysis-hub.pipelines.volumeMount" -}}/srv/analysis-hub-pipelines{{- end }}

{{/*
The settings file's pipelines section: the service reads the same file as the
hub (the database URL comes from its Secret, as $ANALYSIS_HUB_PIPELINES__DATABASE_URL).
*/}}
{{- define "analysis-hub.pipelines.settings" -}}
enabled: {{ .Values.pipelines.enabled }}
port: {{ include "analysis-hub.pipelines.port" . }}
data_dir: {{ include "analysis-hub.pipelines.volumeMount" . }}/state
{{- with .Values.pipelines.publicUrl }}
public_url: {{ . | quote }}
{{- end }}
{{- with .Values.pipelines.runFolder }}
{{- with .size }}
run_folder_size: {{ . | quote }}
{{- end }}
{{- with .accessMode }}
run_folder_access_mode: {{ . | quote }}
{{- end }}
{{- with .storageClassName }}
run_folder_storage_class: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Egress rules to a list of networks ({cidr, ports}: a port or {port, protocol}).
*/}}
{{- define "analysis-hub.networkEgress" -}}
{{- range . }}
- to:
    - ipBlock:
        cidr: {{ .cidr | quote }}
  ports:
    {{- range .ports }}
    {{- if kindIs "map" . }}
    - port: {{ .port }}
      protocol: {{ .protocol | default "TCP" }}
    {{- else }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
    {{- end }}
{{- end }}
{{- end }}

{{/* Egress to the Kubernetes API server (values: apiServer). */}}
{{- define "analysis-hub.apiServerEgress" -}}
- to:
    {{- range .Values.apiServer.cidrs }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
  ports:
    {{- range .Values.apiServer.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}

{{/* Egress to DNS: the cluster's resolver in kube-system, or any private address on port 53. */}}
{{- define "analysis-hub.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
    {{- range list "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}
