{{/* Chart name, truncated to a DNS label. */}}
{{- define "mcpoauth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: "<release>" when it already contains the chart name. */}}
{{- define "mcpoauth.fullname" -}}
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

{{- define "mcpoauth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the gateway pods; never change them (Deployment selectors are immutable). */}}
{{- define "mcpoauth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcpoauth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mcpoauth.labels" -}}
helm.sh/chart: {{ include "mcpoauth.chart" . }}
{{ include "mcpoauth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: mcp-oauth-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mcpoauth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mcpoauth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image: repository@digest, else repository:tag (default: the chart's appVersion). */}}
{{- define "mcpoauth.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the key-ring Secret, or "" when none is configured. */}}
{{- define "mcpoauth.encryptionSecretName" -}}
{{- if .Values.encryption.create }}
{{- printf "%s-encryption" (include "mcpoauth.fullname" .) }}
{{- else }}
{{- .Values.encryption.existingSecret }}
{{- end }}
{{- end }}

{{/* "true" when the key ring Secret is read through the API server (--encryption-key-secret). */}}
{{- define "mcpoauth.keysFromApi" -}}
{{- if and (include "mcpoauth.encryptionSecretName" .) (eq .Values.encryption.source "api") }}true{{ end }}
{{- end }}

{{/* "true" when the key ring Secret is mounted as a volume (--encryption-key-file). */}}
{{- define "mcpoauth.keysMounted" -}}
{{- if and (include "mcpoauth.encryptionSecretName" .) (eq .Values.encryption.source "mount") }}true{{ end }}
{{- end }}

{{/* Host of publicUrl, the default ingress host. */}}
{{- define "mcpoauth.publicHost" -}}
{{- (urlParse .Values.publicUrl).hostname }}
{{- end }}

{{/* Whether the operator watches every namespace (ClusterRole) or a list (Roles). */}}
{{- define "mcpoauth.clusterWide" -}}
{{- if empty .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/* "true" when the NetworkPolicy is rendered: as set, or (unset) with header identity. */}}
{{- define "mcpoauth.networkPolicyEnabled" -}}
{{- $set := .Values.networkPolicy.enabled }}
{{- if kindIs "invalid" $set }}
{{- if eq .Values.identity.mode "header" }}true{{ end }}
{{- else if $set }}true{{ end }}
{{- end }}

{{/*
Cross-field rules the schema cannot phrase readably. Rendered (as nothing) by the Deployment so
every install and upgrade checks them.
*/}}
{{- define "mcpoauth.validate" -}}
{{- $hasKeys := or .Values.encryption.create .Values.encryption.existingSecret }}
{{- if and (eq .Values.store "valkey") (not $hasKeys) (not .Values.valkey.allowPlaintext) }}
{{- fail "store: valkey needs an encryption key ring: set encryption.existingSecret (or, for development, encryption.create with encryption.key), or explicitly valkey.allowPlaintext: true" }}
{{- end }}
{{- if and .Values.encryption.create .Values.encryption.existingSecret }}
{{- fail "encryption.create and encryption.existingSecret exclude each other" }}
{{- end }}
{{- if and (eq .Values.valkey.topology "sentinel") (eq .Values.store "valkey") (not .Values.valkey.sentinelService) }}
{{- fail "valkey.topology: sentinel needs valkey.sentinelService" }}
{{- end }}
{{- if and (eq .Values.identity.mode "oidc") (or (not .Values.identity.oidc.issuer) (not .Values.identity.oidc.audience)) }}
{{- fail "identity.mode is oidc (the default): set identity.oidc.issuer (the issuer of your callers' tokens, e.g. https://login.example.com/realms/acme) and identity.oidc.audience (the aud those tokens carry); or identity.mode: header behind an authenticating proxy. identity.mode: anonymous lets every caller use one shared user's tokens and is for development only" }}
{{- end }}
{{- if and (eq .Values.identity.mode "header") (include "mcpoauth.networkPolicyEnabled" .) (empty .Values.networkPolicy.ingressFrom) }}
{{- fail "identity.mode: header trusts whoever reaches the gateway to name the user: set networkPolicy.ingressFrom to select only the authenticating proxy's pods (e.g. [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: oauth2-proxy}}}]), or networkPolicy.enabled: false if something else keeps everyone but the proxy away" }}
{{- end }}
{{- if and .Values.identity.oidc.clientSecretSecret (not .Values.identity.oidc.clientId) }}
{{- fail "identity.oidc.clientSecretSecret needs identity.oidc.clientId (the client the secret belongs to)" }}
{{- end }}
{{- $host := include "mcpoauth.publicHost" . }}
{{- $loopback := or (eq $host "localhost") (hasPrefix "127." $host) (eq $host "::1") }}
{{- if and (hasPrefix "http://" .Values.publicUrl) (not $loopback) (not .Values.allowInsecureHttp) }}
{{- fail "publicUrl must be https:// outside loopback (allowInsecureHttp: true accepts http://; never in production)" }}
{{- end }}
{{- end }}
