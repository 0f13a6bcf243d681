package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// recorder is a local HTTP server (a webhook, a Pushgateway) that records what it is sent
// and answers with status.
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	got    []recorded
}

type recorded struct {
	method, path, contentType, auth, body string
}

func newRecorder(t *testing.T, status int) *recorder {
	t.Helper()
	r := &recorder{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		u, p, _ := req.BasicAuth()
		r.mu.Lock()
		r.got = append(r.got, recorded{req.Method, req.URL.Path, req.Header.Get("Content-Type"), u + ":" + p, string(body)})
		r.mu.Unlock()
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

// hookEnvFile reads the WNB_* variables a hook wrote with env > file.
func hookEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "WNB_") {
			env[strings.TrimPrefix(k, "WNB_")] = v
		}
	}
	return env
}

// dumpEnv is a hook command that writes its environment to file.
func dumpEnv(file string) string { return `env > '` + file + `'` }

// The pre-hook runs before the backup, the post-hook after it with the run's id, status, path
// and counts — the same as the --json report's.
func TestBackupHooksSeeTheRun(t *testing.T) {
	dir := sitePlatform(t)
	pre, post := filepath.Join(dir, "pre.env"), filepath.Join(dir, "post.env")
	code, stdout, stderr := cliSplit(t, dir, "backup", "--backup-dir", "b", "--json", "-q",
		"--pre-hook", dumpEnv(pre)+` && test ! -e b/backup_*`, "--post-hook", dumpEnv(post))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var rep struct {
		RunID              string `json:"run_id"`
		Path, Status       string
		Rows, Files, Bytes int64
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout)
	}
	if e := hookEnvFile(t, pre); e["HOOK"] != "pre" || e["COMMAND"] != "backup" || e["BACKUP_DIR"] != "b" {
		t.Errorf("pre-hook environment: %v", e)
	}
	e := hookEnvFile(t, post)
	want := map[string]string{
		"HOOK": "post", "COMMAND": "backup", "STATUS": "complete", "RUN_ID": rep.RunID, "BACKUP_PATH": rep.Path,
		"ROWS": strconv.FormatInt(rep.Rows, 10), "FILES": strconv.FormatInt(rep.Files, 10), "BYTES": strconv.FormatInt(rep.Bytes, 10),
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("post-hook WNB_%s = %q, want %q", k, e[k], v)
		}
	}
	if rep.RunID == "" || rep.Rows == 0 || rep.Files == 0 || onlyBackup(t, filepath.Join(dir, "b")) != rep.Path {
		t.Errorf("report %+v", rep)
	}
}

// A failing or hanging pre-hook stops the backup before anything is written, naming the hook;
// the post-hook does not run for a run that never started.
func TestBackupPreHookFailureStopsTheRun(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"fails", []string{"--pre-hook", "echo checking; exit 7"}, []string{`pre-hook "echo …" failed: exit status 7`, "nothing was changed", "checking"}},
		{"times out", []string{"--pre-hook", "sleep 30", "--hook-timeout", "200ms"}, []string{`pre-hook "sleep …": killed after running for 200ms (--hook-timeout)`}},
		{"cannot run", []string{"--pre-hook", "/no/such/hook.sh"}, []string{`pre-hook "/no/such/hook.sh" failed: exit status 127`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := sitePlatform(t)
			post := filepath.Join(dir, "post.env")
			args := append([]string{"backup", "--backup-dir", "b", "--post-hook", dumpEnv(post)}, tt.args...)
			code, out := cli(t, dir, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, "b")); len(entries) > 0 {
				t.Errorf("a backup stopped by its pre-hook wrote %v", entries)
			}
			if _, err := os.Stat(post); err == nil {
				t.Error("the post-hook ran for a run that never started")
			}
		})
	}
}

// A failing post-hook keeps the backup, warns naming the hook and exits 3 (partial); after a
// failed run it sees the failure and the run's own exit code stands.
func TestBackupPostHook(t *testing.T) {
	dir := sitePlatform(t)
	code, out := cli(t, dir, "backup", "--backup-dir", "b", "--post-hook", "exit 4")
	if code != 3 || !strings.Contains(out, `warning: post-hook "exit …" failed: exit status 4`) {
		t.Fatalf("exit %d, want 3 and a warning naming the hook\n%s", code, out)
	}
	onlyBackup(t, filepath.Join(dir, "b"))

	post := filepath.Join(dir, "post.env")
	code, out = cli(t, dir, "backup", "--backup-dir", "b2", "--database", "sqlite:///missing.sqlite3", "--skip-preflight", "--post-hook", dumpEnv(post)+"; exit 9")
	if code != 1 {
		t.Fatalf("exit %d, want the failed backup's 1\n%s", code, out)
	}
	if e := hookEnvFile(t, post); e["STATUS"] != "failed" || !strings.Contains(e["ERROR"], "missing.sqlite3") {
		t.Errorf("post-hook after a failure: %v", e)
	}
}

// --notify POSTs the final JSON report on failure, never with the database password, and on
// success only with --notify-on always.
func TestBackupNotify(t *testing.T) {
	dir := sitePlatform(t)
	hook := newRecorder(t, http.StatusOK)
	const secret = "pg-s3cret-42"
	// A closed port: the backup fails to connect, and the error quotes the database URL.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := dead.Listener.Addr().String()
	dead.Close()
	dbURL := "postgres://app:" + secret + "@" + deadAddr + "/webnovel"

	code, out := cli(t, dir, "backup", "--backup-dir", "b", "--database", dbURL, "--notify", hook.URL+"/hook")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	got := hook.requests()
	if len(got) != 1 || got[0].method != http.MethodPost || got[0].path != "/hook" || got[0].contentType != "application/json" {
		t.Fatalf("webhook got %+v", got)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(got[0].body), &rep); err != nil {
		t.Fatalf("body %s: %v", got[0].body, err)
	}
	if rep["status"] != "failed" || !strings.Contains(rep["error"].(string), deadAddr) || rep["models"] == nil {
		t.Errorf("report %v", rep)
	}
	if strings.Contains(got[0].body, secret) || strings.Contains(out, secret) {
		t.Errorf("the database password leaked:\n%s\n%s", got[0].body, out)
	}

	// Success: no notification by default, the report with --notify-on always.
	if code, out := cli(t, dir, "backup", "--backup-dir", "b", "--notify", hook.URL+"/hook"); code != 0 || len(hook.requests()) != 1 {
		t.Fatalf("exit %d, %d notifications\n%s", code, len(hook.requests()), out)
	}
	if code, out := cli(t, dir, "backup", "--backup-dir", "b", "--notify", hook.URL+"/hook", "--notify-on", "always"); code != 0 || len(hook.requests()) != 2 {
		t.Fatalf("exit %d, %d notifications\n%s", code, len(hook.requests()), out)
	}
	if err := json.Unmarshal([]byte(hook.requests()[1].body), &rep); err != nil || rep["status"] != "complete" || rep["run_id"] == "" {
		t.Errorf("success report %v (%v)", rep, err)
	}
}

// A webhook that keeps failing is tried three times and is a warning: the backup succeeds.
func TestBackupNotifyFailureIsAWarning(t *testing.T) {
	dir := sitePlatform(t)
	hook := newRecorder(t, http.StatusServiceUnavailable)
	code, out := cli(t, dir, "backup", "--backup-dir", "b", "--notify", hook.URL, "--notify-on", "always")
	if code != 0 || !strings.Contains(out, "warning: notify") || len(hook.requests()) != 3 {
		t.Fatalf("exit %d, %d tries\n%s", code, len(hook.requests()), out)
	}
}

func TestHookFlagErrors(t *testing.T) {
	dir := sitePlatform(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"backup", "--notify-on", "sometimes"}, `--notify-on "sometimes": want failure or always`},
		{[]string{"backup", "--notify", "ftp://example.org/x"}, "--notify ftp://example.org/…: want an http:// or https:// URL"},
		{[]string{"restore", "x", "--hook-timeout", "0s"}, "--hook-timeout must be positive"},
		// Checked before the run, not a warning after it; a password in it never shown.
		{[]string{"backup", "--metrics-push", "http://u:Xy7/QzSECRET@127.0.0.1:9"}, "--metrics-push http://xxxxx@127.0.0.1:9: want an http:// or https:// URL"},
		{[]string{"verify", "x", "--metrics-push", "gateway:9091"}, "--metrics-push gateway:9091: want an http:// or https:// URL"},
	}
	for _, tt := range tests {
		code, out := cli(t, dir, tt.args...)
		if code != 2 || !strings.Contains(out, tt.want) || strings.Contains(out, "SECRET") || strings.Contains(out, "Xy7") {
			t.Errorf("%v: exit %d, want 2 and %q\n%s", tt.args, code, tt.want, out)
		}
	}
}

// Restore runs its hooks too: the pre-hook sees the backup it will restore, the post-hook the
// restored rows and files.
func TestRestoreHooks(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup", "--backup-dir", "b"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	b := onlyBackup(t, filepath.Join(dir, "b"))
	pre, post := filepath.Join(dir, "pre.env"), filepath.Join(dir, "post.env")
	code, out := cli(t, dir, "restore", b, "--force", "--pre-hook", dumpEnv(pre), "--post-hook", dumpEnv(post))
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	if e := hookEnvFile(t, pre); e["COMMAND"] != "restore" || e["BACKUP_PATH"] != b {
		t.Errorf("pre-hook: %v", e)
	}
	e := hookEnvFile(t, post)
	if e["STATUS"] != "complete" || e["RUN_ID"] == "" || e["BACKUP_PATH"] != b || e["ROWS"] == "0" || e["FILES"] == "0" {
		t.Errorf("post-hook: %v", e)
	}
	// A failing pre-hook changes nothing: the storage file removed stays removed.
	victim := filepath.Join(dir, "media", someFile(t, filepath.Join(dir, "media")))
	os.Remove(victim)
	if code, out := cli(t, dir, "restore", b, "--force", "--pre-hook", "false"); code != 1 || !strings.Contains(out, `pre-hook "false" failed`) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if _, err := os.Stat(victim); err == nil {
		t.Error("a restore stopped by its pre-hook wrote files")
	}
}

// someFile is the first regular file under root, relative to it.
func someFile(t *testing.T, root string) string {
	t.Helper()
	var found string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && found == "" && d.Type().IsRegular() {
			found, _ = filepath.Rel(root, p)
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no file under %s", root)
	}
	return found
}
