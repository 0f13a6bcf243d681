package main

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Each command cron runs pushes its final metrics to the Pushgateway, in the text format,
// under job/webnovel-backup/instance/<host>/command/<command>; the gateway's credentials are
// used, never put in the body.
func TestMetricsPush(t *testing.T) {
	dir := sitePlatform(t)
	gw := newRecorder(t, http.StatusOK)
	const secret = "push-s3cret"
	gateway := strings.Replace(gw.URL, "://", "://ops:"+secret+"@", 1)
	if code, out := cli(t, dir, "backup", "--backup-dir", "b"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	b := onlyBackup(t, filepath.Join(dir, "b"))
	host, _ := os.Hostname()
	tests := []struct {
		args []string
		want []string // series the body must hold
	}{
		{[]string{"backup", "--backup-dir", "b2"}, []string{
			`wnb_runs_total{kind="backup",outcome="success"}`, `wnb_last_success_timestamp_seconds{kind="backup"}`,
			`wnb_last_run_timestamp_seconds{kind="backup",outcome="success"}`, `wnb_rows_total{kind="export-model"}`,
			`wnb_files_total{kind="copy-prefix"}`}},
		{[]string{"restore", b, "--force"}, []string{`wnb_runs_total{kind="restore",outcome="success"}`, `wnb_last_success_timestamp_seconds{kind="restore"}`}},
		{[]string{"verify", b}, []string{`wnb_runs_total{kind="verify",outcome="success"}`, `wnb_last_success_timestamp_seconds{kind="verify"}`}},
		{[]string{"prune", "--backup-dir", "b", "--keep-last", "1"}, []string{`wnb_runs_total{kind="prune",outcome="success"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			before := len(gw.requests())
			code, out := cli(t, dir, append(tt.args, "--metrics-push", gateway)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			got := gw.requests()[before:]
			if len(got) != 1 {
				t.Fatalf("%d pushes, want 1", len(got))
			}
			p := got[0]
			wantPath := "/metrics/job/webnovel-backup/instance/" + url.PathEscape(host) + "/command/" + tt.args[0]
			if p.method != http.MethodPost || p.path != wantPath || !strings.HasPrefix(p.contentType, "text/plain") || p.auth != "ops:"+secret {
				t.Fatalf("push %s %s (%s, auth %q), want POST %s", p.method, p.path, p.contentType, p.auth, wantPath)
			}
			series := pushedSeries(t, p.body)
			for _, w := range tt.want {
				if _, ok := series[w]; !ok {
					t.Errorf("the push lacks %s", w)
				}
			}
			if strings.Contains(p.body, secret) || strings.Contains(p.body, "://") {
				t.Errorf("the pushed body holds a URL or the gateway's password")
			}
		})
	}
}

// A backup stopped before its coordinator ran (here by the preflight: no database) is still
// counted and pushed as a failure, so the failure alert fires.
func TestMetricsPushOfARunStoppedEarly(t *testing.T) {
	dir := sitePlatform(t)
	gw := newRecorder(t, http.StatusOK)
	code, out := cli(t, dir, "backup", "--backup-dir", "b", "--database", "sqlite:///missing.sqlite3", "--metrics-push", gw.URL)
	if code != 1 || len(gw.requests()) != 1 {
		t.Fatalf("exit %d, %d pushes\n%s", code, len(gw.requests()), out)
	}
	series := pushedSeries(t, gw.requests()[0].body)
	for _, w := range []string{`wnb_runs_total{kind="backup",outcome="failure"}`, `wnb_last_run_timestamp_seconds{kind="backup",outcome="failure"}`} {
		if series[w] <= 0 {
			t.Errorf("the push lacks %s", w)
		}
	}
	if _, ok := series[`wnb_last_run_timestamp_seconds{kind="backup",outcome="success"}`]; ok {
		t.Error("the last backup run is still shown as a success")
	}
}

// pushedSeries parses a text-format body (failing on anything a Pushgateway would refuse)
// into its series, name{labels} in label order.
func pushedSeries(t *testing.T, body string) map[string]float64 {
	t.Helper()
	// Legacy names: what a Pushgateway of any version accepts.
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the pushed body is not the text format: %v", err)
	}
	out := map[string]float64{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+`"`+l.GetValue()+`"`)
				if l.GetName() == "job" || l.GetName() == "instance" {
					t.Errorf("%s carries the grouping label %s", name, l.GetName())
				}
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

// A Pushgateway that refuses or cannot be reached is a warning: the backup still succeeds.
func TestMetricsPushFailureIsAWarning(t *testing.T) {
	dir := sitePlatform(t)
	refusing := newRecorder(t, http.StatusBadRequest)
	closed := newRecorder(t, http.StatusOK)
	closed.Close()
	for _, gateway := range []string{refusing.URL, strings.Replace(closed.URL, "://", "://u:pw-s3cret@", 1)} {
		code, out := cli(t, dir, "backup", "--backup-dir", "b", "--metrics-push", gateway)
		if code != 0 || !strings.Contains(out, "metrics were not pushed") || strings.Contains(out, "pw-s3cret") {
			t.Errorf("%s: exit %d\n%s", gateway, code, out)
		}
	}
	if len(refusing.requests()) != 1 {
		t.Errorf("%d pushes to the refusing gateway", len(refusing.requests()))
	}
}
