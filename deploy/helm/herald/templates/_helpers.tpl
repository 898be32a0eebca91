{{/* Names and labels. */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.fullname" -}}
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

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The secret entries Herald can be given: the variable each one sets, and whether that variable
holds the value itself or the path of a file the value is mounted as.
*/}}
{{- define "herald.secretTable" -}}
jwtSecret: {env: HERALD_JWT_SECRET, file: false}
jwtPublicKey: {env: HERALD_JWT_PUBLIC_KEY, file: true}
kafkaSaslUsername: {env: HERALD_KAFKA_SASL_USERNAME, file: false}
kafkaSaslPassword: {env: HERALD_KAFKA_SASL_PASSWORD_FILE, file: true}
kafkaSslCa: {env: HERALD_KAFKA_SSL_CA_FILE, file: true}
kafkaSslCert: {env: HERALD_KAFKA_SSL_CERT_FILE, file: true}
kafkaSslKey: {env: HERALD_KAFKA_SSL_KEY_FILE, file: true}
{{- end }}

{{- define "herald.secretsDir" -}}
/etc/herald/secrets
{{- end }}

{{/* Where the secret entries come from: the chart's own Secret or `existingSecret`. */}}
{{- define "herald.secretName" -}}
{{- default (printf "%s-secrets" (include "herald.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/*
The entries Herald gets, sorted, as a YAML list: with existingSecret the ones listed in
existingSecretEntries, otherwise the ones with a value. Fails on a mix of the two, an unknown
entry name, an existingSecret that names no entry, or entries named without existingSecret.
*/}}
{{- define "herald.secretEntries" -}}
{{- $table := include "herald.secretTable" . | fromYaml }}
{{- $s := .Values.secrets }}
{{- $entries := list }}
{{- if $s.existingSecret }}
{{- range $name := $s.existingSecretEntries }}
{{- if not (hasKey $table $name) }}
{{- fail (printf "secrets.existingSecretEntries: unknown entry %q (one of: %s)" $name (keys $table | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- if not $s.existingSecretEntries }}
{{- fail "secrets.existingSecret is set: list the entries it holds in secrets.existingSecretEntries" }}
{{- end }}
{{- else if $s.existingSecretEntries }}
{{- fail "secrets.existingSecretEntries is set without secrets.existingSecret" }}
{{- end }}
{{- range $name := keys $table | sortAlpha }}
{{- if $s.existingSecret }}
{{- if get $s $name }}
{{- fail (printf "secrets.%s has a value while secrets.existingSecret is set: use one or the other" $name) }}
{{- end }}
{{- if has $name $s.existingSecretEntries }}
{{- $entries = append $entries $name }}
{{- end }}
{{- else if get $s $name }}
{{- $entries = append $entries $name }}
{{- end }}
{{- end }}
{{- toYaml $entries }}
{{- end }}

{{/*
config's names, checked: environment variable names, none the chart sets itself and none that
carries a secret (those belong in `secrets`).
*/}}
{{- define "herald.checkedConfig" -}}
{{- $owned := list "HERALD_BIND" "HERALD_SHUTDOWN_GRACE_S" }}
{{- $secret := list "HERALD_JWT_SECRET" "HERALD_KAFKA_SASL_PASSWORD" "HERALD_KAFKA_SASL_USERNAME" "HERALD_KAFKA_SASL_PASSWORD_FILE" "HERALD_JWT_PUBLIC_KEY" "HERALD_KAFKA_SSL_CA_FILE" "HERALD_KAFKA_SSL_CERT_FILE" "HERALD_KAFKA_SSL_KEY_FILE" }}
{{- range $name, $value := .Values.config }}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*$" $name) }}
{{- fail (printf "config: %q is not an environment variable name" $name) }}
{{- end }}
{{- if has $name $owned }}
{{- fail (printf "config.%s: the chart sets it (containerPort, shutdownGraceSeconds)" $name) }}
{{- end }}
{{- if has $name $secret }}
{{- fail (printf "config.%s: set it through `secrets`, never in the ConfigMap" $name) }}
{{- end }}
{{- if not (or (kindIs "string" $value) (kindIs "bool" $value) (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) (kindIs "invalid" $value)) }}
{{- fail (printf "config.%s: a string, number or boolean, not %s" $name (kindOf $value)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A setting as a ConfigMap string: numbers without an exponent (1048576, not 1.048576e+06). */}}
{{- define "herald.settingValue" -}}
{{- if kindIs "string" . }}{{ . | quote }}{{ else }}{{ toJson . | quote }}{{ end }}
{{- end }}
