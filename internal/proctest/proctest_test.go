//go:build unix

package proctest

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestRunExitCodeAndOutput(t *testing.T) {
	p := Run(t, "/bin/sh", nil, "-c", "echo out; echo err >&2; exit 3")
	if got := p.ExitCode(); got != 3 {
		t.Errorf("exit code %d, want 3", got)
	}
	if got := p.Stdout(); got != "out\n" {
		t.Errorf("stdout %q", got)
	}
	if got := p.Stderr(); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
}

func TestEnvironmentIsHermetic(t *testing.T) {
	t.Setenv("NATS_URL", "nats://leaked:4222")
	t.Setenv("DATABASE_URL", "postgres://leaked")
	t.Setenv("PROCTEST_KEPT", "kept")
	p := Run(t, "/bin/sh", []string{"STORAGE_URL=/given"}, "-c", `echo "[$NATS_URL][$DATABASE_URL][$STORAGE_URL][$PROCTEST_KEPT]"`)
	if got, want := p.Stdout(), "[][][/given][kept]\n"; got != want {
		t.Errorf("child saw %q, want %q", got, want)
	}
}

// Kill ends the whole process group: a grandchild does not outlive the test.
func TestKillReachesProcessGroup(t *testing.T) {
	p := Start(t, "/bin/sh", nil, "-c", "sleep 60 & echo $!; wait")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var child int
	for child == 0 {
		if s := strings.TrimSpace(p.Stdout()); s != "" {
			var err error
			if child, err = strconv.Atoi(s); err != nil {
				t.Fatalf("child pid %q: %v", s, err)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("the shell did not report its child")
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.Kill()
	if got := p.ExitCode(); got != -1 {
		t.Errorf("exit code after kill %d, want -1", got)
	}
	// The grandchild is reparented to init, which may take a while to reap it.
	for alive(child) {
		select {
		case <-ctx.Done():
			t.Fatalf("grandchild %d survived Kill", child)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// alive reports whether pid is a process that is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // gone, or no /proc to ask
	}
	// pid (comm) state ...; comm may hold spaces, the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func TestWaitHonoursContext(t *testing.T) {
	p := Start(t, "/bin/sh", nil, "-c", "sleep 60")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a running process: %v, want deadline exceeded", err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(context.Background()); err != nil || code != -1 {
		t.Fatalf("Wait after SIGTERM: %d, %v", code, err)
	}
}

// A JetStream server killed with SIGKILL and restarted keeps its streams (same store, same port).
func TestNATSKillRestart(t *testing.T) {
	n := StartNATS(t, NATSOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := connect(t, n.URL())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	n.Kill()
	if !n.Proc().Exited() {
		t.Fatal("server still running after Kill")
	}
	n.Restart()
	s, err := connect(t, n.URL()).Stream(ctx, "T")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages after restart, want 1", info.State.Msgs)
	}
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestFreePortNeverRepeatsAndAvoidsEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d returned twice", p)
		}
		if p < portLow || p >= portHigh {
			t.Fatalf("port %d outside %d-%d", p, portLow, portHigh)
		}
		seen[p] = true
	}
}

// A server whose port is taken exits; waiting for it must say so at once rather than wait out
// its whole readiness bound (which is what let a cluster start fail instead of retrying).
func TestNATSWaitFailsFastWhenServerExits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n := newNATS(t, NATSOptions{Port: ln.Addr().(*net.TCPAddr).Port, Ready: time.Minute})
	n.start()
	start := time.Now()
	err = n.waitReady()
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("waitReady = %v, want an exit", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("waitReady took %v after the server exited", d)
	}
}
