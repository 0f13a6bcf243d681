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
	"strconv"
	"strings"
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
// names the hook and its program (the command's first word: its arguments may hold a
// password, as curl -u does): its exit status, the timeout that killed it, or why it could not
// start.
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
	name := h.Name + " " + strconv.Quote(program(h.Command))
	switch {
	case err == nil:
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: killed after running for %s (--hook-timeout)", name, timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: interrupted: %w", name, ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%s failed: %s", name, exit)
	}
	return fmt.Errorf("%s: start: %w", name, err)
}

// program is a command's first word, with " …" when more follows.
func program(command string) string {
	words := strings.Fields(command)
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return words[0] + " …"
}
