package main

import (
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/redact"
)

// TestRegisterSecrets: the secrets of the command line and the environment that their shape
// alone would not mask (a password with a space, in a flag's value or a location variable;
// an OTLP header's value) are masked by their value wherever they are quoted.
func TestRegisterSecrets(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":               "postgres://u:env pw9Secret@db/app",
		"OTEL_EXPORTER_OTLP_HEADERS": "x-team=ops,authorization=Bearer hdr7Secret%zz",
	}
	registerSecrets([]string{"backup", "--nats=nats://u:flag pw8Secret@127.0.0.1:1", "--backup-dir", "s3://b/p?endpoint=http://u:arg pw6Secret@h:9"}, func(k string) string { return env[k] })
	for _, s := range []string{"env pw9Secret", "flag pw8Secret", "arg pw6Secret", "Bearer hdr7Secret%zz"} {
		if got := redact.Text(`refused "` + s + `" here`); strings.Contains(got, "Secret") {
			t.Errorf("%q is not masked: %q", s, got)
		}
	}
}
