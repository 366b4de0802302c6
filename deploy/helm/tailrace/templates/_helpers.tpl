{{/* Names, labels and shared snippets. */}}

{{- define "tailrace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Resource name prefix, at most 45 characters: the longest suffix is 16 ("-server-headless") and a
StatefulSet name must stay within 52, since its pods get a "<name>-<10-char hash>" label (63 max).
*/}}
{{- define "tailrace.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tailrace.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tailrace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tailrace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tailrace.labels" -}}
helm.sh/chart: {{ include "tailrace.chart" . }}
{{ include "tailrace.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tailrace
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component: (dict "ctx" $ "component" "server"). */}}
{{- define "tailrace.componentLabels" -}}
{{ include "tailrace.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tailrace.componentSelectorLabels" -}}
{{ include "tailrace.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* "  annotations:" with commonAnnotations, or nothing; call it as {{- include ... }} under metadata. */}}
{{- define "tailrace.annotations" -}}
{{- with .Values.commonAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end -}}

{{- define "tailrace.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "tailrace.serverName" -}}{{ include "tailrace.fullname" . }}-server{{- end -}}
{{- define "tailrace.serverHeadlessName" -}}{{ include "tailrace.fullname" . }}-server-headless{{- end -}}
{{- define "tailrace.operatorName" -}}{{ include "tailrace.fullname" . }}-operator{{- end -}}
{{- define "tailrace.webhookName" -}}{{ include "tailrace.fullname" . }}-webhook{{- end -}}
{{- define "tailrace.webhookSecretName" -}}{{ include "tailrace.fullname" . }}-webhook-tls{{- end -}}
{{- define "tailrace.agentName" -}}{{ include "tailrace.fullname" . }}-agent{{- end -}}
{{- define "tailrace.storeSecretName" -}}{{ include "tailrace.fullname" . }}-store{{- end -}}

{{- define "tailrace.tokensSecretName" -}}
{{- default (printf "%s-tokens" (include "tailrace.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "tailrace.serverServiceAccountName" -}}
{{- if .Values.server.serviceAccount.create -}}
{{- default (include "tailrace.serverName" .) .Values.server.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.server.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tailrace.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "tailrace.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tailrace.agentServiceAccountName" -}}
{{- if .Values.agent.daemonset.serviceAccount.create -}}
{{- default (include "tailrace.agentName" .) .Values.agent.daemonset.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.agent.daemonset.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* In-cluster addresses of the server. */}}
{{- define "tailrace.serverHost" -}}
{{- printf "%s.%s.svc.%s" (include "tailrace.serverName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- define "tailrace.serverHttpUrl" -}}
{{- printf "http://%s:%d" (include "tailrace.serverHost" .) (int .Values.server.service.httpPort) -}}
{{- end -}}
{{- define "tailrace.serverGrpcAddress" -}}
{{- printf "%s:%d" (include "tailrace.serverHost" .) (int .Values.server.service.grpcPort) -}}
{{- end -}}

{{/* Where the token Secret is mounted in every pod that needs one. */}}
{{- define "tailrace.tokensDir" -}}/etc/tailrace/tokens{{- end -}}

{{- define "tailrace.tokensVolume" -}}
- name: tokens
  secret:
    secretName: {{ include "tailrace.tokensSecretName" . }}
    defaultMode: 0440
{{- end -}}

{{/* Read-only root filesystem: Python and libraries may still want a scratch folder. */}}
{{- define "tailrace.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "tailrace.prometheusAnnotations" -}}
{{- if .ctx.Values.metrics.prometheusAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Pod-spec level (two spaces); call it as {{- include ... }}. */}}
{{- define "tailrace.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end -}}

{{/* The server runs as a Deployment only when several replicas can share one store. */}}
{{- define "tailrace.serverReplicas" -}}
{{- if .Values.store.postgresql.enabled -}}{{ .Values.server.replicaCount }}{{- else -}}1{{- end -}}
{{- end -}}

{{/*
The webhook's serving certificate when cert-manager is off, as YAML {ca, crt, key} (base64).
Generated once per render and memoised in .Values, which every template of the chart shares, so the
Secret, the caBundle and the pod checksum agree; read back from the cluster on upgrades, so it stays.
*/}}
{{- define "tailrace.webhookCert" -}}
{{- if not (hasKey .Values "_webhookCert") -}}
{{- $name := include "tailrace.webhookSecretName" . -}}
{{- $data := (lookup "v1" "Secret" .Release.Namespace $name).data | default dict -}}
{{- $cert := dict -}}
{{- if and (hasKey $data "ca.crt") (hasKey $data "tls.crt") (hasKey $data "tls.key") -}}
{{- $cert = dict "ca" (index $data "ca.crt") "crt" (index $data "tls.crt") "key" (index $data "tls.key") -}}
{{- else -}}
{{- $svc := include "tailrace.webhookName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $days := int .Values.webhook.generatedCertValidityDays -}}
{{- $dns := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) -}}
{{- /* ECDSA P-256: as strong as RSA 3072, and quick to generate on every render. */ -}}
{{- $ca := genCAWithKey (printf "%s-ca" $svc) $days (genPrivateKey "ecdsa") -}}
{{- $leaf := genSignedCertWithKey (printf "%s.%s.svc" $svc $ns) nil $dns $days $ca (genPrivateKey "ecdsa") -}}
{{- $cert = dict "ca" ($ca.Cert | b64enc) "crt" ($leaf.Cert | b64enc) "key" ($leaf.Key | b64enc) -}}
{{- end -}}
{{- $_ := set .Values "_webhookCert" $cert -}}
{{- end -}}
{{- toYaml (get .Values "_webhookCert") -}}
{{- end -}}

{{/* Changes when the serving certificate does, so the operator restarts onto the new one. */}}
{{- define "tailrace.webhookCertChecksum" -}}
{{- if .Values.webhook.certManager.enabled -}}
cert-manager
{{- else -}}
{{- (include "tailrace.webhookCert" . | fromYaml).crt | sha256sum | trunc 16 -}}
{{- end -}}
{{- end -}}

{{- define "tailrace.certManagerIssuerName" -}}{{ include "tailrace.fullname" . }}-selfsigned{{- end -}}
{{- define "tailrace.certManagerCertificateName" -}}{{ include "tailrace.webhookName" . }}{{- end -}}
