//go:build unix

package faults

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/messages"
)

func TestMain(m *testing.M) {
	code := proctest.Main(m)
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// platformOptions make a platform whose backup takes a few seconds: ~250 files of ~200 kB
// and, with --chunk-rows 10, some fifty export tasks.
var platformOptions = demo.Options{
	Seed: 7, Users: 20, Authors: 5, Languages: 6,
	Books: 10, ChaptersPerBook: 10, MediaPerChapter: 1, ChangeLogsPerChapter: 2,
	FileBytes: 200_000,
}

// platform is a generated webnovel platform every process of a test reads.
type platform struct {
	DBPath  string
	Storage string
	Files   int
}

// DatabaseURL is the dj-database-url of the platform's SQLite file.
func (p platform) DatabaseURL() string { return "sqlite:///" + p.DBPath }

// shared is the platform, generated once per test process: tests only read it.
var shared struct {
	once sync.Once
	dir  string
	p    platform
	err  error
}

func sharedPlatform(t *testing.T) platform {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "wnb-faults-")
		if shared.err != nil {
			return
		}
		p := platform{DBPath: filepath.Join(shared.dir, "db.sqlite3"), Storage: filepath.Join(shared.dir, "media")}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sum, err := demo.Fill(ctx, p.DatabaseURL(), p.Storage, platformOptions)
		if err != nil {
			shared.err = fmt.Errorf("fill platform: %w", err)
			return
		}
		p.Files = sum.Files
		shared.p = p
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.p
}

// scene is what one fault test runs against: the shared platform, the binary, a NATS server
// of its own, the environment that points processes at both, and a folder for backups.
type scene struct {
	p       platform
	bin     string
	srv     *proctest.NATS
	env     []string
	backups string
}

// newScene starts the test's NATS server and gathers the rest.
func newScene(t *testing.T) scene {
	t.Helper()
	p := sharedPlatform(t)
	srv := proctest.StartNATS(t, proctest.NATSOptions{})
	return scene{p: p, bin: proctest.Binary(t), srv: srv, env: p.env(srv.URL()), backups: t.TempDir()}
}

// env is the environment of every process of a test: the platform and the cluster.
func (p platform) env(natsURL string) []string {
	return []string{"DATABASE_URL=" + p.DatabaseURL(), "STORAGE_URL=" + p.Storage, "NATS_URL=" + natsURL}
}

// backupArgs are a coordinator's arguments: no in-process workers, many small export tasks.
func backupArgs(backupDir string, extra ...string) []string {
	return append([]string{"backup", "--workers", "0", "--backup-dir", backupDir, "--chunk-rows", "10", "-v"}, extra...)
}

// waitBackup waits for a coordinator to end, fails the test unless it succeeded, and returns
// the published backup's path (from its report).
func waitBackup(t *testing.T, ctx context.Context, p *proctest.Proc) string {
	t.Helper()
	code, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("backup did not finish: %v", err)
	}
	if code != 0 {
		t.Fatalf("backup exited %d:\n%s", code, lastLines(p.Stderr(), 20))
	}
	for _, line := range strings.Split(p.Stdout(), "\n") {
		if path, ok := strings.CutPrefix(line, "Backup complete: "); ok {
			return strings.TrimSpace(path)
		}
	}
	t.Fatalf("backup exited 0 without naming its folder:\n%s", p.Stdout())
	return ""
}

// verifyBackup runs `webnovel-backup verify` on a backup and fails the test unless it passes
// with as many files as the platform has.
func verifyBackup(t *testing.T, bin, path string, files int) {
	t.Helper()
	v := proctest.Run(t, bin, nil, "verify", path)
	if code := v.ExitCode(); code != 0 {
		t.Fatalf("verify %s exited %d:\n%s\n%s", path, code, v.Stdout(), v.Stderr())
	}
	if want := fmt.Sprintf(" %d files (", files); !strings.Contains(v.Stdout(), want) {
		t.Errorf("verify %s: want %q in its report:\n%s", path, want, v.Stdout())
	}
}

// backupNames lists the entries of dir named backup_*.
func backupNames(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "backup_*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// monitor is the test's own connection to the cluster, to watch the queue.
type monitor struct {
	t  *testing.T
	nc *nats.Conn
	js jetstream.JetStream
}

func newMonitor(t *testing.T, url string) *monitor {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	return &monitor{t: t, nc: nc, js: js}
}

// consumer returns the workers' consumer info, or an error while it does not exist yet.
func (m *monitor) consumer(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := m.js.Consumer(ictx, messages.StreamTasks, messages.ConsumerWorkers)
	if err != nil {
		return nil, err
	}
	return c.Info(ictx)
}

// waitFor polls cond every 50ms until it is true, failing the test when ctx ends first. A
// last value given is reported then (what cond saw last).
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool, last ...*any) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			if len(last) > 0 && *last[0] != nil {
				t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), *last[0])
			}
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitHeld waits until the consumer has tasks delivered and not acked (some worker holds one)
// and others still queued. It fails the test if coord, the run's coordinator, ends first.
func (m *monitor) waitHeld(ctx context.Context, coord *proctest.Proc) {
	m.t.Helper()
	waitFor(m.t, ctx, "a worker to hold a task", func() bool {
		if coord.Exited() {
			m.t.Fatalf("the run ended before a worker was seen holding a task:\n%s", lastLines(coord.Stderr(), 5))
		}
		i, err := m.consumer(ctx)
		return err == nil && i.NumAckPending > 0 && i.NumPending > 0
	})
}

// results returns the latest result of every task on the results stream, by task id.
func (m *monitor) results(ctx context.Context) map[string]*messages.Result {
	m.t.Helper()
	cons, err := m.js.OrderedConsumer(ctx, messages.StreamResults, jetstream.OrderedConsumerConfig{})
	if err != nil {
		m.t.Fatalf("read results: %v", err)
	}
	out := map[string]*messages.Result{}
	for {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return out
		}
		if err != nil {
			m.t.Fatalf("read results: %v", err)
		}
		r, err := messages.DecodeResult(msg.Data())
		if err != nil {
			m.t.Fatalf("read results: %v", err)
		}
		out[r.Run+"/"+r.Task] = r
		md, err := msg.Metadata()
		if err == nil && md.NumPending == 0 {
			return out
		}
	}
}

// tempFiles lists the files being written under dir (the storage package's temporary names).
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".wnb-tmp-") {
			out = append(out, path)
		}
		return nil
	})
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
