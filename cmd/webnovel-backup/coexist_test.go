//go:build unix

package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
)

// envAsCommand makes the test binary run as the command itself, so tests can start real
// webnovel-backup processes without building another binary.
const envAsCommand = "WNB_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(envAsCommand) == "1" {
		os.Exit(runInterruptible(os.Args[1:], os.Stdout, os.Stderr, os.Exit, nil))
	}
	os.Exit(proctest.Main(m))
}

// freeAddr is a loopback address nothing listens on (at the time of the call).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitLog waits, up to a deadline, until the process has logged want.
func waitLog(t *testing.T, p *proctest.Proc, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.Stderr(), want) {
		if p.Exited() {
			t.Fatalf("%s exited (code %d) before logging %q:\n%s", p.Name(), p.ExitCode(), want, p.Stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within 30s:\n%s", p.Name(), want, p.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two workers on one host with the same health and metrics addresses both start: the second
// warns that the addresses are taken, naming them and the flag to change, and serves tasks.
func TestWorkersCoexistOnOneHost(t *testing.T) {
	dir := sitePlatform(t)
	embURL := queuetest.Server(t)
	health, metrics := freeAddr(t), freeAddr(t)
	dbURL, media := "sqlite:///"+filepath.Join(dir, "db.sqlite3"), filepath.Join(dir, "media")
	env := []string{envAsCommand + "=1", "DATABASE_URL=" + dbURL, "STORAGE_URL=" + media}
	args := []string{"worker", "--nats", embURL, "--health-addr", health, "--metrics-addr", metrics}

	first := proctest.Start(t, os.Args[0], env, args...)
	waitLog(t, first, "worker started")
	if resp, err := http.Get("http://" + health + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first worker's health endpoint: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	second := proctest.Start(t, os.Args[0], env, args...)
	waitLog(t, second, "worker started")
	log := second.Stderr()
	for _, want := range []string{
		"health endpoint is off", "--health-addr", fmt.Sprintf("addr=%s", health),
		"metrics endpoint is off", "--metrics-addr", fmt.Sprintf("addr=%s", metrics),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("second worker's log lacks %q:\n%s", want, log)
		}
	}

	// With the first worker gone, only the second can run the backup's tasks.
	first.Kill()
	code, out := cli(t, dir, "backup", "--quiet", "--workers", "0", "--nats", embURL, "--stall-timeout", "60s",
		"--skip-preflight", "--database", dbURL, "--storage", media)
	if code != 0 {
		t.Fatalf("backup served by the second worker: exit %d\n%s\nworker log:\n%s", code, out, second.Stderr())
	}
	onlyBackup(t, filepath.Join(dir, "backups"))
	if second.Exited() {
		t.Fatalf("second worker exited: %s", second.Stderr())
	}
}
