//go:build unix

package proctest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RunTimeout bounds Run when the test has no earlier deadline.
var RunTimeout = 2 * time.Minute

// hermetic names environment variables a child must not inherit from the test's environment:
// the commands read them as defaults, and a developer's NATS_URL must not leak into a test.
var hermetic = []string{"DATABASE_URL=", "STORAGE_URL=", "NATS_"}

var procSeq atomic.Int64

// EnvLogDir names a folder to keep the processes' logs in (by default they go to the test's
// temporary folder and are removed with it; the ends of them are logged when a test fails).
const EnvLogDir = "PROCTEST_LOGDIR"

// Proc is a running (or finished) child process. Its stdout and stderr go to files, whose
// ends are logged when the test fails.
type Proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	outLog string
	errLog string
	done   chan struct{}
	code   int // after done: exit code, -1 when ended by a signal
	err    error
}

// Start starts bin with args and the environment env ("KEY=value" entries added to the
// test's environment, minus DATABASE_URL, STORAGE_URL and NATS_*). The process is killed with
// its process group when the test ends.
func Start(t testing.TB, bin string, env []string, args ...string) *Proc {
	t.Helper()
	seq := procSeq.Add(1)
	name := fmt.Sprintf("%s-%d-%d", filepath.Base(bin), os.Getpid(), seq)
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name = fmt.Sprintf("%s-%s-%d-%d", filepath.Base(bin), args[0], os.Getpid(), seq)
	}
	dir := os.Getenv(EnvLogDir)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("proctest: %s: %v", EnvLogDir, err)
	}
	p := &Proc{
		t: t, name: name,
		outLog: filepath.Join(dir, name+".stdout"),
		errLog: filepath.Join(dir, name+".stderr"),
		done:   make(chan struct{}),
	}
	stdout, err := os.Create(p.outLog)
	if err != nil {
		t.Fatalf("proctest: start %s: %v", name, err)
	}
	defer stdout.Close()
	stderr, err := os.Create(p.errLog)
	if err != nil {
		t.Fatalf("proctest: start %s: %v", name, err)
	}
	defer stderr.Close()

	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = childEnv(env)
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("proctest: start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Logf("proctest: started %s (pid %d): %s", name, p.Pid(), strings.Join(args, " "))
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("proctest: %s (pid %d) exit %d\n--- %s stdout:\n%s\n--- %s stderr:\n%s",
				name, p.Pid(), p.code, name, tail(p.outLog, 4<<10), name, tail(p.errLog, 16<<10))
		}
	})
	return p
}

// StartWorker starts `bin worker args...`. Unless args say otherwise, its health endpoint
// listens on a free loopback port (the default :8081 would clash between workers).
func StartWorker(t testing.TB, bin string, env []string, args ...string) *Proc {
	t.Helper()
	a := []string{"worker"}
	if !hasFlag(args, "--health-addr") {
		a = append(a, "--health-addr", "127.0.0.1:0")
	}
	return Start(t, bin, env, append(a, args...)...)
}

// Run runs bin to its end, bounded by the test's deadline or RunTimeout; a process still
// running then is killed and the test fails.
func Run(t testing.TB, bin string, env []string, args ...string) *Proc {
	t.Helper()
	p := Start(t, bin, env, args...)
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			var c2 context.CancelFunc
			ctx, c2 = context.WithDeadline(ctx, dl.Add(-5*time.Second))
			defer c2()
		}
	}
	if _, err := p.Wait(ctx); err != nil {
		p.Kill()
		t.Fatalf("proctest: %s: %v", p.name, err)
	}
	return p
}

func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		keep := true
		for _, h := range hermetic {
			if strings.HasPrefix(kv, h) {
				keep = false
			}
		}
		if keep {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// Name is the process's name in logs, e.g. "webnovel-backup-worker-3".
func (p *Proc) Name() string { return p.name }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end and returns its exit code (-1 when a signal ended it),
// or ctx's error if ctx ends first (the process keeps running).
func (p *Proc) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.done:
		return p.code, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("%s (pid %d) still running: %w", p.name, p.Pid(), ctx.Err())
	}
}

// ExitCode is the exit code of an ended process (-1 when a signal ended it); it fails the
// test if the process is still running.
func (p *Proc) ExitCode() int {
	p.t.Helper()
	if !p.Exited() {
		p.t.Fatalf("proctest: %s (pid %d) is still running", p.name, p.Pid())
	}
	return p.code
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("%s (pid %d) has ended", p.name, p.Pid())
	}
	if err := syscall.Kill(p.Pid(), sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process's group and waits until the process has ended. It does
// nothing to a process that has already ended.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	// The group id is the pid (Setpgid); the process has not been reaped, so it is still ours.
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// Stdout returns what the process has written to stdout so far.
func (p *Proc) Stdout() string { return readFile(p.outLog) }

// Stderr returns what the process has written to stderr so far (the commands' logs).
func (p *Proc) Stderr() string { return readFile(p.errLog) }

func readFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(data)
}
