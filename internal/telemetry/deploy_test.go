package telemetry_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/webnovel/webnovel-backup/internal/telemetry"
)

// The monitoring files in deploy/ (the Grafana dashboard, the Prometheus alerting rules) only
// query metrics this binary exports, and cover what an operator watches.

const (
	dashboardFile = "../../deploy/grafana/webnovel-backup.json"
	alertsFile    = "../../deploy/prometheus/alerts.yml"
	alertsTest    = "../../deploy/prometheus/alerts_test.yml"
)

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`(?i)\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	grafanaVar   = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	promToken    = regexp.MustCompile(`[A-Za-z0-9_:.]+`)
	promKeywords = []string{"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring",
		"group_left", "group_right", "inf", "nan", "atan2", "start", "end"}
)

// promqlMetrics lists the metric names a PromQL expression (or a Grafana query, whose $vars
// are dropped) selects: identifiers outside strings, label matchers, ranges and grouping
// lists that are neither functions, aggregations, keywords nor numbers.
func promqlMetrics(expr string) []string {
	s := promString.ReplaceAllString(expr, `""`)
	s = grafanaVar.ReplaceAllString(s, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promToken.FindAllStringIndex(s, -1) {
		tok := s[loc[0]:loc[1]]
		if c := tok[0]; c >= '0' && c <= '9' || c == '.' || slices.Contains(promKeywords, strings.ToLower(tok)) {
			continue
		}
		if strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") {
			continue // a function or an aggregation
		}
		if !slices.Contains(names, tok) {
			names = append(names, tok)
		}
	}
	return names
}

func TestPromqlMetrics(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`time() - max(wnb_last_success_timestamp_seconds{kind="backup"}) > 26 * 3600`, []string{"wnb_last_success_timestamp_seconds"}},
		{`histogram_quantile(0.95, sum by (le, kind) (rate(wnb_task_duration_seconds_bucket[$__rate_interval])))`, []string{"wnb_task_duration_seconds_bucket"}},
		{`absent(wnb_workers_running) or sum(wnb_workers_running) < 1`, []string{"wnb_workers_running"}},
		{`sum(rate(a_total[5m] offset 1h)) by (kind) / on(instance) group_left(worker) b`, []string{"a_total", "b"}},
		{`label_replace(up{job=~"x|y"}, "dst", "$1", "src", "(.*)") * 1e3`, []string{"up"}},
		{`max by (kind, outcome, instance) (wnb_last_run_timestamp_seconds) * 1000`, []string{"wnb_last_run_timestamp_seconds"}},
		{`sum(wnb_typo_total{a="b{c}"})`, []string{"wnb_typo_total"}},
	}
	for _, tt := range tests {
		if got := promqlMetrics(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("promqlMetrics(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}

// dashboardExprs walks the dashboard JSON for every "expr" (panel targets, wherever nested).
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if e, ok := x["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
	return exprs
}

// alertRule is one rule of deploy/prometheus/alerts.yml.
type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var rules []alertRule
	for _, g := range doc.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// Every metric the dashboard and the rules query is one this binary exports, and together
// they query what the operator watches: freshness, outcomes, durations, throughput,
// redeliveries, tasks in flight and the worker pool.
func TestMonitoringQueriesExportedMetrics(t *testing.T) {
	names, err := telemetry.MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"wnb_runs_total", "wnb_task_duration_seconds_bucket", "go_goroutines"} {
		if !slices.Contains(names, must) {
			t.Fatalf("MetricNames lacks %s: %v", must, names)
		}
	}
	queried := map[string][]string{} // metric → where
	for _, e := range dashboardExprs(t) {
		for _, m := range promqlMetrics(e) {
			queried[m] = append(queried[m], "dashboard: "+e)
		}
	}
	rules := alertRules(t)
	for _, r := range rules {
		for _, m := range promqlMetrics(r.Expr) {
			queried[m] = append(queried[m], "alert "+r.Alert)
		}
	}
	for m, where := range queried {
		if !slices.Contains(names, m) {
			t.Errorf("%s is not a metric webnovel-backup exports (queried by %s)", m, strings.Join(where, "; "))
		}
	}
	for _, want := range []string{
		"wnb_last_success_timestamp_seconds", "wnb_last_run_timestamp_seconds", "wnb_runs_total",
		"wnb_task_duration_seconds_bucket", "wnb_rows_total", "wnb_bytes_total", "wnb_files_total",
		"wnb_task_redeliveries_total", "wnb_tasks_in_flight", "wnb_workers_running",
	} {
		if _, ok := queried[want]; !ok {
			t.Errorf("neither the dashboard nor the alerts query %s", want)
		}
	}
	var alerts []string
	for _, r := range rules {
		alerts = append(alerts, r.Alert)
	}
	sort.Strings(alerts)
	for _, want := range []string{"WebnovelBackupTooOld", "WebnovelBackupRunFailed", "WebnovelBackupRunPartial", "WebnovelBackupNoWorker", "WebnovelBackupRedeliveriesRising"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("%s: no alert %s (have %v)", alertsFile, want, alerts)
		}
	}
}

// promtool checks the rules' syntax and runs their unit tests (alerts_test.yml: the
// thresholds fire and clear when they should). Without promtool the test is skipped, unless
// WNB_REQUIRE_POSTGRES=1 says every external tool must be there (CI installs Debian's
// prometheus package).
func TestPromtoolRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("WNB_REQUIRE_POSTGRES") == "1" {
			t.Fatal("promtool not found (apt-get install prometheus)")
		}
		t.Skip("promtool not found")
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(alertsFile)},
		{"test", "rules", filepath.Base(alertsTest)},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(alertsFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
