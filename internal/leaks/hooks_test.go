package leaks_test

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// receiver is a webhook or Pushgateway on loopback that adds every request's path and body to
// outs (its credentials, sent as basic auth, are the request's own and not an output).
func receiver(t *testing.T, outs *outputs, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		outs.add(name+" request "+r.URL.Path, append([]byte(r.URL.String()+"\n"), body...))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Issue 15: what a run sends outside — the --notify report, the --metrics-push body, the
// WNB_* variables of its hooks — holds no secret, whether the run succeeds or fails on a
// location with credentials; the webhook's and the gateway's own passwords are used, never
// printed.
func TestNoSecretReachesAWebhookOrGateway(t *testing.T) {
	sc := newScene(t)
	all := maps.Clone(secrets)
	all["webhook URL password"], all["Pushgateway URL password"] = marker+"Webhook", marker+"Gateway"
	hook := strings.Replace(receiver(t, sc.outs, "webhook"), "://", "://ops:"+all["webhook URL password"]+"@", 1)
	gw := strings.Replace(receiver(t, sc.outs, "pushgateway"), "://", "://ops:"+all["Pushgateway URL password"]+"@", 1)
	closed := withSecrets(t, "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2")
	around := func(env string) []string {
		return []string{"--notify", hook, "--notify-on", "always", "--metrics-push", gw,
			"--pre-hook", "env | grep ^WNB_ > pre-" + env, "--post-hook", "env | grep ^WNB_ > post-" + env}
	}
	sc.run(t, []step{
		{nil, append([]string{"backup", "--backup-dir", "h", "-v"}, around("ok.env")...), 0},
		{[]string{"DATABASE_URL=" + closed}, append([]string{"backup", "--skip-files", "--skip-preflight", "--backup-dir", "f"}, around("fail.env")...), 1},
		{[]string{"DATABASE_URL=" + closed}, append([]string{"backup", "--skip-files", "--backup-dir", "f", "--json"}, around("preflight.env")...), 1},
		{nil, []string{"verify", "h/nope", "--metrics-push", gw}, 1},
	})
	for _, name := range []string{"pre-ok.env", "post-ok.env", "pre-fail.env", "post-fail.env", "pre-preflight.env", "post-preflight.env"} {
		data, err := os.ReadFile(filepath.Join(sc.dir, name))
		if err != nil || !strings.Contains(string(data), "WNB_") {
			t.Fatalf("hook output %s: %v %q", name, err, data)
		}
		sc.outs.add("hook environment "+name, data)
	}
	if n, p := sc.outs.count("webhook request"), sc.outs.count("pushgateway request"); n != 3 || p != 4 {
		t.Fatalf("%d notifications and %d pushes captured, want 3 and 4: the sweep would miss them", n, p)
	}
	sc.outs.sweep(t, all)
}
