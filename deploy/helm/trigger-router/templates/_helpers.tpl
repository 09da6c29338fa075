{{- define "trigger-router.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "trigger-router.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "trigger-router.labels" -}}
{{ include "trigger-router.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "trigger-router.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "trigger-router.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "trigger-router.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "trigger-router.secretName" -}}
{{- default (include "trigger-router.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The Secret keys that exist: from the values, or as listed for an existing Secret. */}}
{{- define "trigger-router.secretKeys" -}}
{{- $keys := list -}}
{{- if .Values.secrets.existingSecret -}}
{{- $keys = .Values.secrets.existingSecretKeys -}}
{{- else -}}
{{- if .Values.secrets.githubSecrets }}{{ $keys = append $keys "github-secrets" }}{{ end -}}
{{- if .Values.secrets.gitlabTokens }}{{ $keys = append $keys "gitlab-tokens" }}{{ end -}}
{{- if .Values.secrets.eventsTokens }}{{ $keys = append $keys "events-tokens" }}{{ end -}}
{{- if .Values.secrets.githubAppPrivateKey }}{{ $keys = append $keys "github-app-private-key" }}{{ end -}}
{{- if .Values.secrets.githubToken }}{{ $keys = append $keys "github-token" }}{{ end -}}
{{- if .Values.secrets.subscriptionsTokens }}{{ $keys = append $keys "subscriptions-tokens" }}{{ end -}}
{{- if .Values.secrets.gitlabReporterToken }}{{ $keys = append $keys "gitlab-reporter-token" }}{{ end -}}
{{- range $name, $values := .Values.secrets.registrySecrets }}{{ if $values }}{{ $keys = append $keys (printf "registry-%s-secrets" $name) }}{{ end }}{{ end -}}
{{- end -}}
{{- toJson $keys -}}
{{- end -}}

{{- define "trigger-router.validate" -}}
{{- if and (eq .Values.mode "embedded") (gt (int .Values.replicaCount) 1) -}}
{{- fail "mode: embedded runs one replica (its JetStream is on one volume); use mode: external with a NATS JetStream cluster for more" -}}
{{- end -}}
{{- if and (eq .Values.mode "external") (not .Values.nats.url) -}}
{{- fail "mode: external needs nats.url (nats://nats.nats.svc:4222)" -}}
{{- end -}}
{{- end -}}
