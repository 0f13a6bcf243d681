// Package proctest starts real processes for tests: the webnovel-backup binary (coordinators
// and workers) and nats-server, alone or as a three-node JetStream cluster; and a peer that
// accepts connections and never answers (SilentListener). Everything
// listens on 127.0.0.1 only, every process runs in its own process group, and each is killed
// with its group when its test ends, so no test leaves a stray process behind.
//
// Binaries are built once per test process; call Main from TestMain to remove them afterwards:
//
//	func TestMain(m *testing.M) { os.Exit(proctest.Main(m)) }
package proctest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// builds holds the binaries built by this test process.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

// Main runs the tests and then removes the binaries they built; it returns the exit code.
func Main(m *testing.M) int {
	code := m.Run()
	RemoveBinaries()
	return code
}

// RemoveBinaries removes the binaries this test process built. Main calls it; a TestMain that
// runs its tests through another helper's Main (pgtest.Main) calls it afterwards.
func RemoveBinaries() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir = ""
	}
}

// Binary returns the path of the webnovel-backup command built from this module's
// ./cmd/webnovel-backup, building it on first use.
func Binary(t testing.TB) string {
	t.Helper()
	return goBuild(t, "webnovel-backup", "./cmd/webnovel-backup")
}

// NATSServerBinary returns the path of nats-server built from the module dependency
// github.com/nats-io/nats-server/v2, building it on first use.
func NATSServerBinary(t testing.TB) string {
	t.Helper()
	return goBuild(t, "nats-server", "github.com/nats-io/nats-server/v2")
}

// goBuild builds pkg once per test process. Without a go command the test is skipped (the
// binaries cannot be had); a failing build fails it.
func goBuild(t testing.TB, name, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*build{}
	}
	b := builds.bins[name]
	if b == nil {
		b = &build{}
		builds.bins[name] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() { b.path, b.err = doBuild(name, pkg) })
	if errors.Is(b.err, exec.ErrNotFound) {
		t.Skipf("proctest: cannot build %s: %v", pkg, b.err)
	}
	if b.err != nil {
		t.Fatalf("proctest: %v", b.err)
	}
	return b.path
}

func doBuild(name, pkg string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	root, err := moduleRoot(goBin)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	builds.mu.Lock()
	if builds.dir == "" {
		builds.dir, err = os.MkdirTemp("", "proctest-bin-")
	}
	dir := builds.dir
	builds.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	out := filepath.Join(dir, name)
	statSources(root)
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
	}
	return out, nil
}

// moduleRoot is the folder of the go.mod of the package under test.
func moduleRoot(goBin string) (string, error) {
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// statSources stats the module's Go files and go.mod/go.sum. The binaries are built from them
// by another process, which go test's result cache cannot see; files the test process itself
// looks at are part of the cache key, so a changed source reruns the tests.
func statSources(root string) {
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil
		case d.IsDir() && path != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")):
			return filepath.SkipDir
		case !d.IsDir() && (strings.HasSuffix(d.Name(), ".go") || d.Name() == "go.mod" || d.Name() == "go.sum"):
			os.Stat(path)
		}
		return nil
	})
}

// Ports are picked below Linux's ephemeral range (32768 and up by default), where the kernel
// never hands a port to an outgoing connection or a listen on port 0, and never twice in one
// test process: a port picked by asking the kernel for one and closing it came back twice in
// one cluster once, and the second server could not bind.
const (
	portLow  = 20000
	portHigh = 32000
)

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and that no earlier
// call in this process returned.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		port := portLow + rand.IntN(portHigh-portLow)
		if portsGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[port] = true
		return port
	}
	t.Fatalf("proctest: no free port in %d-%d after 200 tries", portLow, portHigh)
	return 0
}

// tail returns at most the last n bytes of the file, for failure reports.
func tail(path string, n int64) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if int64(len(data)) > n {
		data = data[int64(len(data))-n:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
		data = append([]byte("…\n"), data...)
	}
	return string(data)
}
