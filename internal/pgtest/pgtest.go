// Package pgtest gives tests a real PostgreSQL server: an existing one named by
// WNB_TEST_POSTGRES_URL, or a throwaway cluster (initdb + pg_ctl) started once per test process
// on a free loopback port. Each caller of URL gets a new, empty database.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by the package.
const (
	// EnvURL names an existing server to create test databases on (a superuser URL).
	EnvURL = "WNB_TEST_POSTGRES_URL"
	// EnvRequire, set to 1, turns "no PostgreSQL available" from a skip into a failure (CI).
	EnvRequire = "WNB_REQUIRE_POSTGRES"
)

var (
	once    sync.Once
	srv     *server
	srvErr  error
	counter atomic.Int64
)

// server is the PostgreSQL the test process uses.
type server struct {
	admin string // URL of a database to run CREATE/DROP DATABASE from

	// Set when this process started the cluster.
	dir, data, pgCtl string
	runAs            string // OS user the cluster runs as; "" for the current one
}

// Main runs the tests, then stops the server it started (if any), and returns the exit code.
func Main(m *testing.M) int {
	code := m.Run()
	if srv != nil {
		if err := srv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	return code
}

// URL returns the postgres:// URL of a new empty database, dropped when the test ends. The
// test is skipped when no server can be had, unless WNB_REQUIRE_POSTGRES=1, then it fails.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { srv, srvErr = start() })
	if srvErr != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("pgtest: PostgreSQL required (%s=1) but unavailable: %v", EnvRequire, srvErr)
		}
		t.Skipf("pgtest: no PostgreSQL: %v", srvErr)
	}
	name := dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" ENCODING 'UTF8' TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize()
		// WITH (FORCE) (PostgreSQL 13+) ends sessions a test left open.
		if err := srv.exec(ctx, q+" WITH (FORCE)"); err != nil {
			if err := srv.exec(ctx, q); err != nil {
				t.Logf("pgtest: drop database %s: %v", name, err)
			}
		}
	})
	u, err := withDatabase(srv.admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// dbName makes a unique, valid database name from the test name.
func dbName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 32 {
		s = s[:32]
	}
	return fmt.Sprintf("wnb_%d_%d_%s", os.Getpid(), counter.Add(1), s)
}

// withDatabase replaces the database (path) of a postgres URL.
func withDatabase(raw, db string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse server URL: %w", err)
	}
	u.Path = "/" + db
	u.RawPath = ""
	return u.String(), nil
}

func (s *server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// start finds or starts the server.
func start() (*server, error) {
	if u := os.Getenv(EnvURL); u != "" {
		s := &server{admin: u}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := s.exec(ctx, "SELECT 1"); err != nil {
			return nil, fmt.Errorf("connect %s: %w", EnvURL, err)
		}
		return s, nil
	}
	return startCluster()
}

// findBin finds a PostgreSQL program on PATH, then in the newest /usr/lib/postgresql/*/bin.
func findBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH nor in /usr/lib/postgresql/*/bin", name)
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func startCluster() (*server, error) {
	initdb, err := findBin("initdb")
	if err != nil {
		return nil, err
	}
	pgCtl, err := findBin("pg_ctl")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wnb-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	s := &server{dir: dir, data: filepath.Join(dir, "data"), pgCtl: pgCtl}

	// PostgreSQL refuses to run as root: run it as postgres (or nobody) through runuser.
	if os.Geteuid() == 0 {
		if err := s.dropRoot(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if out, err := s.run(initdb, "-D", s.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	// A free port can be taken between probe and start: try a few.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, s.dir)
		out, err := s.run(pgCtl, "-D", s.data, "-l", filepath.Join(s.dir, "postgres.log"), "-o", opts, "-w", "-t", "60", "start")
		if err != nil {
			lastErr = fmt.Errorf("pg_ctl start: %w: %s%s", err, out, s.logTail())
			continue
		}
		s.admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		if err := s.waitReady(); err != nil {
			lastErr = err
			s.stop()
			return nil, lastErr
		}
		return s, nil
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// dropRoot picks the OS user the cluster runs as and gives it the cluster directory.
func (s *server) dropRoot() error {
	if _, err := exec.LookPath("runuser"); err != nil {
		return errors.New("running as root and runuser not found")
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return fmt.Errorf("chown cluster dir to %s: %w", name, err)
		}
		s.runAs = name
		return nil
	}
	return errors.New("running as root and neither a postgres nor a nobody user exists")
}

// run runs a PostgreSQL program, as s.runAs when set.
func (s *server) run(prog string, args ...string) ([]byte, error) {
	if s.runAs != "" {
		args = append([]string{"-u", s.runAs, "--", prog}, args...)
		prog = "runuser"
	}
	cmd := exec.Command(prog, args...)
	cmd.Dir = s.dir // the cwd must be readable by the cluster's user
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

func (s *server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\nlog: " + string(b)
}

func (s *server) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.exec(ctx, "SELECT 1")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server did not accept connections: %w%s", err, s.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops a cluster this process started and removes its directory.
func (s *server) stop() error {
	if s.data == "" {
		return nil
	}
	var err error
	if out, e := s.run(s.pgCtl, "-D", s.data, "-m", "fast", "-w", "stop"); e != nil {
		err = fmt.Errorf("pg_ctl stop: %w: %s", e, out)
	}
	if e := os.RemoveAll(s.dir); e != nil && err == nil {
		err = e
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
