{{/*
How a pod of ours that runs the hub image pulls it: the way Zero to JupyterHub 4.4.0's
hub Deployment pulls that same image, from the same values, so one registry setting
serves both pods (the pipelines service runs the hub image).

- `analysis-hub.hubImage.pullPolicy`: `jupyterhub.hub.image.pullPolicy`, empty when unset
  (Kubernetes' own default then applies, as for z2jh's hub).
- `analysis-hub.hubImage.pullSecrets`: a YAML list of `{name: ...}` (empty when none):
  `jupyterhub.hub.image.pullSecrets` and the global `jupyterhub.imagePullSecrets`, without
  repeats, entries given as plain names or as `{name: ...}`; plus the Secret z2jh creates
  from `jupyterhub.imagePullSecret` when `create` is on and `automaticReferenceInjection`
  (z2jh's default: on) is not off.
*/}}
{{- define "analysis-hub.hubImage.pullPolicy" -}}
{{- dig "hub" "image" "pullPolicy" "" .Values.jupyterhub | default "" -}}
{{- end }}

{{- define "analysis-hub.hubImage.pullSecrets" -}}
{{- $z2jh := .Values.jupyterhub -}}
{{- $given := concat (dig "hub" "image" "pullSecrets" list $z2jh | default list) ($z2jh.imagePullSecrets | default list) -}}
{{- $created := $z2jh.imagePullSecret | default dict -}}
{{- if and $created.create (dig "automaticReferenceInjection" true $created) -}}
{{- $given = append $given (printf "%simage-pull-secret" (include "analysis-hub.z2jhNamePrefix" .)) -}}
{{- end -}}
{{- $secrets := list -}}
{{- range $given -}}
{{- $entry := ternary (dict "name" .) . (kindIs "string" .) -}}
{{- if not (has $entry $secrets) -}}
{{- $secrets = append $secrets $entry -}}
{{- end -}}
{{- end -}}
{{- if $secrets }}{{ toYaml $secrets }}{{ end -}}
{{- end }}

{{/*
The prefix z2jh puts before its own resources' names (`image-pull-secret` and others): a
`jupyterhub.fullnameOverride` string and a dash ("" by default: no prefix); when it is null,
the release name, followed by the chart's name (`nameOverride`, else `jupyterhub`) unless the
release name already contains it.
*/}}
{{- define "analysis-hub.z2jhNamePrefix" -}}
{{- $override := .Values.jupyterhub.fullnameOverride -}}
{{- if kindIs "string" $override -}}
{{- with $override }}{{ . }}-{{ end -}}
{{- else -}}
{{- $name := .Values.jupyterhub.nameOverride | default "jupyterhub" -}}
{{- if contains $name .Release.Name }}{{ .Release.Name }}-{{ else }}{{ .Release.Name }}-{{ $name }}-{{ end -}}
{{- end -}}
{{- end }}
