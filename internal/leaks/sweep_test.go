package leaks_test

import (
	"context"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// marker is part of every secret, so one search finds any of them.
const marker = "Lk7s3cr3t"

// secrets are the known secrets, by the way each is given.
var secrets = map[string]string{
	"database URL userinfo password": marker + "UserInfo",
	"database URL ?password=":        marker + "QueryPass",
	"database URL ?sslpassword=":     marker + "SslPass",
	"PGPASSWORD":                     marker + "PgEnv",
	"AWS_SECRET_ACCESS_KEY":          marker + "AwsEnv",
	"S3 URL ?secret_key=":            marker + "S3Query",
	"NATS password":                  marker + "NatsPass",
	"NATS token":                     marker + "NatsToken",
	"wrong NATS password":            marker + "NatsWrong",
	"malformed NATS URL":             marker + "NatsBadURL",
	"S3 endpoint userinfo":           marker + "S3Endpoint",
	"password with a space":          marker + "Spaced",
}

// withSecrets gives a postgres URL (of a trust-auth test server, which ignores passwords) the
// secrets every way a URL can carry a password.
func withSecrets(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), secrets["database URL userinfo password"])
	q := u.Query()
	q.Set("password", secrets["database URL ?password="])
	q.Set("sslpassword", secrets["database URL ?sslpassword="])
	u.RawQuery = q.Encode()
	return u.String()
}

// scene is what the sweep runs against.
type scene struct {
	outs            *outputs
	dir             string
	env             []string // the platform, PGPASSWORD, S3 credentials, tracing
	natsEnv         []string // the password-protected NATS server, credentials in the environment
	natsHost        string   // host:port of that server
	userURL, tokURL string   // both NATS servers, credentials in the URL
	s3              *s3test.Server
	srcURL, dstURL  string
	demoURL         string
	media, dstMedia string
	wantNonZero     map[string]bool
}

// newScene fills a PostgreSQL platform and starts S3, a trace collector and two NATS servers
// (user/password and token) that record every message.
func newScene(t *testing.T) *scene {
	t.Helper()
	if bin == "" {
		t.Skip("no webnovel-backup binary")
	}
	sc := &scene{outs: &outputs{}, dir: t.TempDir()}
	src, dst := pgtest.URL(t), pgtest.URL(t)
	sc.demoURL = withSecrets(t, pgtest.URL(t))
	sc.media, sc.dstMedia = filepath.Join(sc.dir, "media"), filepath.Join(sc.dir, "restored-media")
	if _, err := demo.Fill(context.Background(), src, sc.media, demo.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	sc.srcURL, sc.dstURL = withSecrets(t, src), withSecrets(t, dst)
	sc.s3 = s3test.Start(t, nil, "backups")
	traces := collector(t, sc.outs)
	pass, token := secrets["NATS password"], secrets["NATS token"]
	userSrv := natsServer(t, sc.outs, server.Options{Username: "wnb", Password: pass}, nats.UserInfo("wnb", pass))
	tokSrv := natsServer(t, sc.outs, server.Options{Authorization: token}, nats.Token(token))
	sc.natsHost = strings.TrimPrefix(userSrv, "nats://")
	sc.userURL = "nats://wnb:" + pass + "@" + sc.natsHost
	sc.tokURL = "nats://" + token + "@" + strings.TrimPrefix(tokSrv, "nats://")
	sc.natsEnv = []string{"NATS_URL=nats://" + sc.natsHost, "NATS_USER=wnb", "NATS_PASSWORD=" + pass}
	sc.env = []string{
		"DATABASE_URL=" + sc.srcURL, "STORAGE_URL=" + sc.media,
		"PGPASSWORD=" + secrets["PGPASSWORD"], "AWS_SECRET_ACCESS_KEY=" + secrets["AWS_SECRET_ACCESS_KEY"],
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + traces, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_SAMPLER=always_on", "OTEL_BSP_SCHEDULE_DELAY=100",
	}
	return sc
}

// step is one command line with extra environment and the exit code it must end with.
type step struct {
	env  []string
	args []string
	code int
}

func (sc *scene) run(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		env := append(append([]string{}, sc.env...), s.env...)
		code, out := run(t, sc.outs, sc.dir, env, s.args...)
		if code != s.code {
			t.Fatalf("%v: exit %d, want %d\n%s", s.args, code, s.code, out)
		}
	}
}

// Issue 10 item 13: a secret given any supported way reaches no output: not the backup's
// files (metadata, restore.sh, SHA256SUMS, fixtures, archives), not a command's output in
// text or JSON logs and reports, not an error message, not a trace attribute, not a message
// on the queue or a run record.
func TestNoSecretReachesAnOutput(t *testing.T) {
	sc := newScene(t)
	s3dest := sc.s3.URL("backups", "nightly", "")
	sc.run(t, []step{
		{nil, []string{"doctor"}, 0},
		{sc.natsEnv, []string{"doctor", "--json", "--log-format", "json", "-v"}, 0},
		{nil, []string{"backup", "-v", "--backup-dir", "b", "--metrics-file", "wnb.prom"}, 0},
		{nil, []string{"backup", "--compress", "--backup-dir", "b", "--json", "--log-format", "json", "-v", "--nats", sc.userURL}, 0},
		{sc.natsEnv, []string{"backup", "-v", "--backup-dir", s3dest}, 0},
		{nil, []string{"backup", "--skip-files", "--backup-dir", "c", "--nats", sc.tokURL, "--log-format", "json", "-v"}, 0},
	})
	sc.backupWithWorkerProcess(t)
	folder, archive := onlyBackups(t, filepath.Join(sc.dir, "b"))
	restore := []string{"DATABASE_URL=" + sc.dstURL, "STORAGE_URL=" + sc.dstMedia}
	sc.run(t, []step{
		{restore, []string{"init-db"}, 0},
		{restore, []string{"restore", folder, "--force", "-v"}, 0},
		{restore, []string{"restore", archive, "--force", "--json", "--log-format", "json", "-v", "--nats", sc.userURL}, 0},
		{nil, []string{"verify", folder}, 0},
		{nil, []string{"verify", archive, "--json", "--log-format", "json", "-v"}, 0},
		{nil, []string{"copy", folder, s3dest, "--json", "--log-format", "json", "-v"}, 0},
		{nil, []string{"list", "--backup-dir", "b"}, 0},
		{nil, []string{"list", "--backup-dir", s3dest, "--json", "--log-format", "json", "-v"}, 0},
		{nil, []string{"test-backup-restore", "-v"}, 0},
		{nil, []string{"demo", "--postgres", sc.demoURL, "--path", "demo", "--log-format", "json", "-v"}, 0},
		{nil, []string{"prune", "--keep-last", "1", "--backup-dir", s3dest, "--dry-run", "--json"}, 0},
		{sc.natsEnv, []string{"runs"}, 0},
		{nil, []string{"runs", "--json", "--nats", sc.userURL}, 0},
		{nil, []string{"runs", "--nats", "nats://" + strings.TrimPrefix(sc.tokURL, "nats://"+secrets["NATS token"]+"@"), "--nats-token", secrets["NATS token"], "-v"}, 0},
	})
	sc.failures(t)
	sc.collectFiles(t)
	// The sweep must not pass for want of material: traces, tasks, results and run records.
	for _, prefix := range []string{"trace export", "queue message on wnb.tasks.", "queue message on wnb.results.", "queue message on $KV.WNB_RUNS."} {
		if sc.outs.count(prefix) == 0 {
			t.Fatalf("nothing captured as %q: the sweep would miss it", prefix)
		}
	}
	sc.outs.sweep(t, secrets)
}

// failures runs commands that fail on a location holding secrets: errors must name the
// location without them.
func (sc *scene) failures(t *testing.T) {
	t.Helper()
	closed := withSecrets(t, "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2")
	wrong := "nats://wnb:" + secrets["wrong NATS password"] + "@" + sc.natsHost
	s3creds := sc.s3.URL("backups", "x", "secret_key="+secrets["S3 URL ?secret_key="])
	badNATS := "nats://wnb:" + secrets["malformed NATS URL"] + "@127.0.0.1:notaport"
	endpoint := "s3://backups/x?path_style=true&region=us-east-1&endpoint=http://u:" + secrets["S3 endpoint userinfo"] + "@" + strings.TrimPrefix(sc.s3.Endpoint(), "http://")
	badTLS := closed + "&sslmode=bogus"
	// A password with a space ends a location where its shape says: masked by its value.
	spaced := "a b" + secrets["password with a space"]
	for _, s := range []step{
		{[]string{"DATABASE_URL=" + badTLS}, []string{"backup", "--skip-files", "--skip-preflight", "--backup-dir", "f"}, 1},
		{[]string{"DATABASE_URL=" + badTLS}, []string{"doctor", "--log-format", "json", "-v"}, 1},
		{nil, []string{"backup", "--backup-dir", "f", "--nats", badNATS}, 1},
		{nil, []string{"doctor", "--nats", badNATS, "--json"}, 1},
		{nil, []string{"runs", "--nats", badNATS, "--log-format", "json"}, 1},
		{nil, []string{"worker", "--nats", badNATS, "--health-addr", "127.0.0.1:0"}, 1},
		{nil, []string{"list", "--backup-dir", endpoint}, 1},
		{nil, []string{"doctor", "--backup-dir", endpoint, "--json"}, 1},
		{nil, []string{"verify", endpoint + "&x=/backup_20240101_000000"}, 1},
		{[]string{"STORAGE_URL=" + endpoint}, []string{"backup", "--backup-dir", "f", "--log-format", "json"}, 1},
		{nil, []string{"demo", "--postgres", sc.srcURL, "--path", "demo-into-full"}, 1},
		{nil, []string{"restore", "--force", endpoint + "&x=/backup_20240101_000000", "--json"}, 1},
		{nil, []string{"verify", s3creds + "&x=/backup_20240101_000000", "--json"}, 1},
		{nil, []string{"prune", "--keep-last", "1", "--backup-dir", s3creds}, 1},
		{nil, []string{"prune", "--keep-last", "1", "--backup-dir", endpoint, "--json"}, 1},
		{[]string{"DATABASE_URL=" + closed}, []string{"backup", "--skip-files", "--backup-dir", "f"}, 1},
		{[]string{"DATABASE_URL=" + closed}, []string{"doctor", "--json"}, 1},
		{[]string{"DATABASE_URL=" + closed}, []string{"backup", "--skip-files", "--skip-preflight", "--backup-dir", "f", "--log-format", "json", "--json"}, 1},
		{nil, []string{"backup", "--backup-dir", "f", "--nats", wrong, "--json"}, 1},
		{nil, []string{"runs", "--nats", wrong}, 1},
		{nil, []string{"backup", "--backup-dir", s3creds}, 1},
		// past the preflight, which names no location: the run's own errors must not either
		{nil, []string{"backup", "--skip-preflight", "--backup-dir", s3creds, "-v"}, 1},
		{nil, []string{"backup", "--skip-preflight", "--compress", "--backup-dir", s3creds, "--json", "--log-format", "json"}, 1},
		{nil, []string{"restore", "--force", "--skip-preflight", s3creds + "&x=/backup_20240101_000000", "--json"}, 1},
		{nil, []string{"list", "--backup-dir", s3creds, "--json"}, 1},
		{nil, []string{"backup", "--skip-files", "--backup-dir", "f", "--copy-to", s3creds, "--json"}, 3},
		{nil, []string{"backup", "--skip-files", "--backup-dir", "f", "--copy-to", endpoint, "-v"}, 3},
		{nil, []string{"copy", s3creds + "&x=/backup_20240101_000000", "f", "--json"}, 2},
		{nil, []string{"runs", "--nats", "nats://u:" + spaced + "@127.0.0.1:1"}, 1},
		{nil, []string{"backup", "--skip-files", "--backup-dir", "f", "--json", "--nats", "nats://u:" + spaced + "@127.0.0.1:1"}, 1},
		{nil, []string{"backup", "--skip-files", "--backup-dir", "f", "--metrics-push", "http://u:" + spaced + "@127.0.0.1:1"}, 2},
		{nil, []string{"list", "--backup-dir", "s3://backups/x?endpoint=http://u:" + spaced + "@127.0.0.1:1&region=us-east-1", "--json"}, 1},
	} {
		env := append(append([]string{}, sc.env...), s.env...)
		if code, out := run(t, sc.outs, sc.dir, env, s.args...); code == 0 {
			t.Fatalf("%v succeeded; it should fail\n%s", s.args, out)
		}
	}
}

// backupWithWorkerProcess runs a backup whose tasks a separate worker process does.
func (sc *scene) backupWithWorkerProcess(t *testing.T) {
	t.Helper()
	logs := filepath.Join(sc.dir, "worker.log")
	f, err := os.Create(logs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := exec.Command(bin, "worker", "--concurrency", "2", "--health-addr", "127.0.0.1:0", "-v", "--log-format", "json")
	w.Dir, w.Stdout, w.Stderr = sc.dir, f, f
	w.Env = append(append(cleanEnv(), sc.env...), sc.natsEnv...)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		w.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- w.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			w.Process.Kill()
			<-done
			t.Error("worker did not stop within 30s of SIGTERM")
		}
		b, _ := os.ReadFile(logs)
		sc.outs.add("output of the worker process", b)
	}()
	sc.run(t, []step{{sc.natsEnv, []string{"backup", "--workers", "0", "--backup-dir", "w", "-v"}, 0}})
}

// collectFiles adds every file the runs wrote: local backups and the S3 bucket.
func (sc *scene) collectFiles(t *testing.T) {
	t.Helper()
	n := 0
	metrics, err := os.ReadFile(filepath.Join(sc.dir, "wnb.prom"))
	if err != nil {
		t.Fatalf("metrics file: %v", err)
	}
	sc.outs.add("metrics file", metrics)
	for _, d := range []string{"b", "c", "w", "demo"} {
		n += addTree(t, sc.outs, filepath.Join(sc.dir, d))
	}
	list, err := sc.s3.Backend.ListBucket("backups", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Contents {
		obj, err := sc.s3.Backend.GetObject("backups", o.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(obj.Contents)
		obj.Contents.Close()
		if err != nil {
			t.Fatal(err)
		}
		sc.outs.add("s3://backups/"+o.Key, b)
		n++
	}
	if n < 20 {
		t.Fatalf("only %d backup files to sweep", n)
	}
}

// onlyBackups is the one backup folder and the one archive in dir.
func onlyBackups(t *testing.T, dir string) (folder, archive string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch {
		case strings.HasSuffix(e.Name(), ".tar.gz"):
			archive = filepath.Join(dir, e.Name())
		case e.IsDir() && strings.HasPrefix(e.Name(), "backup_"):
			folder = filepath.Join(dir, e.Name())
		}
	}
	if folder == "" || archive == "" {
		t.Fatalf("want a backup folder and an archive in %s, have %v", dir, entries)
	}
	return folder, archive
}
