{{/*
What the operator does in a namespace it watches: mirror Functions, Pipelines and their Pods to the
server, keep kopf's progress and finalizers on the custom resources, write their status, post Events.
*/}}
{{- define "tailrace.operatorNamespacedRules" -}}
- apiGroups: ["tailrace.dev"]
  resources: ["functions", "pipelines"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["tailrace.dev"]
  resources: ["functions/status", "pipelines/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["tailrace.dev"]
  resources: ["functions/finalizers", "pipelines/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list", "watch"]
{{- end -}}

{{/* kopf peering: watch every peering object, write only Tailrace's keep-alives. */}}
{{- define "tailrace.operatorPeeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  resourceNames: ["tailrace"]
  verbs: ["get", "patch"]
{{- end -}}
