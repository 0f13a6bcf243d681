// Package hooks runs the operator's commands before and after a run (--pre-hook,
// --post-hook): through sh -c, with the run's facts in WNB_* variables, bounded by a timeout
// that kills the hook and everything it started.
package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"time"
)

// DefaultTimeout is how long a hook may run unless told otherwise.
const DefaultTimeout = 5 * time.Minute

// waitDelay is how long a killed hook's output may take to drain: a grandchild that escaped
// the process group could otherwise hold the pipes open for ever.
const waitDelay = 5 * time.Second

// Hook is one command to run.
type Hook struct {
	// Name says which hook it is in errors ("pre-hook", "post-hook").
	Name string
	// Command is given to sh -c.
	Command string
	// Timeout kills the hook after this long; 0 means DefaultTimeout.
	Timeout time.Duration
	// Output receives the hook's standard output and error (nil: discarded).
	Output io.Writer
}

// Env is the run's facts for a hook, as WNB_<KEY>=value variables (keys without the prefix:
// "RUN_ID", "STATUS", …).
type Env map[string]string

// list is env as sorted KEY=value pairs, prefixed with WNB_.
func (e Env) list() []string {
	out := make([]string, 0, len(e))
	for k, v := range e {
		out = append(out, "WNB_"+k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Run runs the hook with the process's environment plus env, and waits for it. An error
// names the hook and its command: its exit status, the timeout that killed it, or why it
// could not start.
func (h Hook) Run(ctx context.Context, env Env) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", h.Command)
	cmd.Env = append(os.Environ(), env.list()...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = h.Output, h.Output
	// Its own process group, so the timeout kills the hook's children (a sleep, a curl) too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	switch {
	case err == nil:
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s %q: killed after running for %s (--hook-timeout)", h.Name, h.Command, timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("%s %q: interrupted: %w", h.Name, h.Command, ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%s %q failed: %s", h.Name, h.Command, exit)
	}
	return fmt.Errorf("%s %q: start: %w", h.Name, h.Command, err)
}
