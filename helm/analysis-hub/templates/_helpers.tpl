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
analysis_hub.backends.kubernetes.profiles.CHART_USER_TOLERATIONS.
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
{{- $chart := dict
  "backend" "kubernetes"
  "data_dir" "/srv/jupyterhub/analysis-hub"
  "catalog" "/usr/local/etc/analysis-hub/profiles"
  "kubernetes" $kubernetes
  "pipelines" (dict "enabled" false "output_url" .Values.pipelines.outputUrl)
  "culler" (pick .Values.jupyterhub.cull "enabled" "timeout" "every")
-}}
{{- mustMergeOverwrite (deepCopy .Values.settings) $chart | toYaml }}
{{- end }}
