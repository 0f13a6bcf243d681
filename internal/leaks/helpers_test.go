package leaks_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
)

// bin is the webnovel-backup command built for these tests ("" when it could not be built).
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wnb-leaks-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaks: build webnovel-backup:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles ./cmd/webnovel-backup of this module into dir.
func build(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	path := filepath.Join(dir, "webnovel-backup")
	cmd := exec.Command("go", "build", "-o", path, "./cmd/webnovel-backup")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w\n%s", err, b)
	}
	return path, nil
}

// output is one thing a secret must never reach, by name.
type output struct {
	where string
	data  []byte
}

// outputs gathers what the sweep reads, from any goroutine.
type outputs struct {
	mu  sync.Mutex
	all []output
}

func (o *outputs) add(where string, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.all = append(o.all, output{where, bytes.Clone(data)})
}

// sweep fails the test for every output holding one of the secrets, naming both.
func (o *outputs) sweep(t *testing.T, secrets map[string]string) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, out := range o.all {
		for how, secret := range secrets {
			if i := bytes.Index(out.data, []byte(secret)); i >= 0 {
				lo, hi := max(0, i-120), min(len(out.data), i+len(secret)+40)
				t.Errorf("the secret given as %s is in %s: …%s…", how, out.where, out.data[lo:hi])
			}
		}
	}
}

// run runs the command in dir with env (on top of a clean environment), adds its standard
// output and error to outs, and returns its exit code and both.
func run(t *testing.T, outs *outputs, dir string, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("%v: %v", args, err)
	}
	name := strings.Join(args, " ")
	outs.add("stdout of "+name, stdout.Bytes())
	outs.add("stderr of "+name, stderr.Bytes())
	return code, stdout.String() + stderr.String()
}

// cleanEnv is this process's environment without what the command reads as its settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "DATABASE_URL="), strings.HasPrefix(kv, "STORAGE_URL="),
			strings.HasPrefix(kv, "NATS_"), strings.HasPrefix(kv, "PG"), strings.HasPrefix(kv, "OTEL_"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

// addTree adds every file under root to outs; archives are read whole, entry by entry.
func addTree(t *testing.T, outs *outputs, root string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		outs.add(p, data)
		n++
		if strings.HasSuffix(p, ".gz") {
			n += addArchive(t, outs, p, data)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", root, err)
	}
	return n
}

// addArchive adds the decompressed stream and each tar entry of a .tar.gz (or .gz).
func addArchive(t *testing.T, outs *outputs, name string, data []byte) int {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	outs.add(name+" (decompressed)", raw)
	n := 0
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		outs.add(name+":"+h.Name, b)
		n++
		if strings.HasSuffix(h.Name, ".gz") {
			n += addArchive(t, outs, name+":"+h.Name, b)
		}
	}
	return n
}

// collector is an OTLP/HTTP trace receiver on loopback that keeps every export it gets.
func collector(t *testing.T, outs *outputs) string {
	t.Helper()
	var n int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		mu.Lock()
		n++
		where := fmt.Sprintf("trace export %d (%s)", n, r.URL.Path)
		mu.Unlock()
		outs.add(where, b)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// count is how many outputs have a name starting with prefix.
func (o *outputs) count(prefix string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, out := range o.all {
		if strings.HasPrefix(out.where, prefix) {
			n++
		}
	}
	return n
}

// natsServer starts an in-process JetStream server on loopback that demands opts' credentials,
// and records every message published on it (the client connects with connOpts).
func natsServer(t *testing.T, outs *outputs, opts server.Options, connOpts ...nats.Option) string {
	t.Helper()
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(&opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(15 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL(), connOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	for _, subject := range []string{">", "$JS.>", "$KV.>"} {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			var b bytes.Buffer
			fmt.Fprintf(&b, "%s %s %v\n", m.Subject, m.Reply, m.Header)
			b.Write(m.Data)
			outs.add("queue message on "+m.Subject, b.Bytes())
		})
		if err != nil {
			t.Fatal(err)
		}
		sub.SetPendingLimits(-1, -1)
	}
	nc.Flush()
	return srv.ClientURL()
}
