{{/* The server's pod template, shared by the StatefulSet (SQLite) and the Deployment (PostgreSQL). */}}
{{- define "tailrace.serverPodTemplate" -}}
{{- $pg := .Values.store.postgresql -}}
metadata:
  labels:
    {{- include "tailrace.componentLabels" (dict "ctx" . "component" "server") | nindent 4 }}
    {{- with .Values.server.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $prometheus := include "tailrace.prometheusAnnotations" (dict "ctx" . "port" .Values.server.service.httpPort) | fromYaml }}
  {{- $annotations := merge (deepCopy .Values.server.podAnnotations) $prometheus }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "tailrace.serverServiceAccountName" . }}
  # The server talks to the Kubernetes API only for TokenReview/SubjectAccessReview.
  automountServiceAccountToken: {{ .Values.auth.kubernetes.enabled }}
  {{- include "tailrace.imagePullSecrets" . }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.server.terminationGracePeriodSeconds }}
  {{- with .Values.server.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  containers:
    - name: server
      image: {{ include "tailrace.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - server
        {{- if not $pg.enabled }}
        - --store
        - sqlite:////data/tailrace.db
        {{- end }}
        {{- /* With PostgreSQL the URL comes from the Secret-backed TAILRACE_STORE_URL below, so it never shows in the process arguments. */}}
        - --http-addr
        - 0.0.0.0:{{ .Values.server.service.httpPort }}
        - --grpc-addr
        - 0.0.0.0:{{ .Values.server.service.grpcPort }}
        - --tokens-file
        - {{ include "tailrace.tokensDir" . }}/tokens
        - --ingest-tokens-file
        - {{ include "tailrace.tokensDir" . }}/ingest-tokens
        # One key for every replica, so a cursor from one replica pages on another.
        - --cursor-secret-file
        - {{ include "tailrace.tokensDir" . }}/cursor-secret
        {{- if .Values.auth.kubernetes.enabled }}
        - --kubernetes-auth
        {{- if .Values.agent.daemonset.enabled }}
        - --ingest-service-account
        - system:serviceaccount:{{ .Release.Namespace }}:{{ include "tailrace.agentServiceAccountName" . }}
        {{- end }}
        {{- range .Values.auth.kubernetes.ingestServiceAccounts }}
        - --ingest-service-account
        - {{ . }}
        {{- end }}
        {{- end }}
        - --log-level
        - {{ .Values.server.logLevel }}
        {{- with .Values.server.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        {{- if $pg.enabled }}
        - name: TAILRACE_STORE_URL
          valueFrom:
            secretKeyRef:
              name: {{ default (include "tailrace.storeSecretName" .) $pg.existingSecret }}
              key: {{ $pg.existingSecretKey }}
        {{- end }}
        - name: TAILRACE_POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        {{- with .Values.server.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.server.service.httpPort }}
          protocol: TCP
        - name: grpc
          containerPort: {{ .Values.server.service.grpcPort }}
          protocol: TCP
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 2
        failureThreshold: 60
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 2
      resources:
        {{- toYaml .Values.server.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tokens
          mountPath: {{ include "tailrace.tokensDir" . }}
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if not $pg.enabled }}
        - name: data
          mountPath: /data
        {{- end }}
  volumes:
    {{- include "tailrace.tokensVolume" . | nindent 4 }}
    {{- include "tailrace.tmpVolume" . | nindent 4 }}
    {{- if and (not $pg.enabled) (not .Values.server.persistence.enabled) }}
    - name: data
      emptyDir: {}
    {{- end }}
  {{- with .Values.server.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.server.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.server.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.server.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
