package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/hooks"
	"github.com/webnovel/webnovel-backup/internal/notify"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
)

// Values of --notify-on.
const (
	notifyOnFailure = "failure"
	notifyOnAlways  = "always"
)

// reportGrace is how long after Ctrl-C or SIGTERM a run with a post-hook, a notification or
// a push may take to stop: an interrupted run is reported too (a second signal still exits
// at once).
const reportGrace = 20 * time.Second

// pushOptions is --metrics-push, for every command cron runs: the run's final metrics go to
// a Pushgateway, since the process exits before any scrape.
type pushOptions struct {
	gateway string
	// record counts the run in the run metrics here: commands whose run no coordinator
	// counts (verify, prune, test-backup-restore).
	record bool
}

// AddFlags adds --metrics-push to f.
func (p *pushOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&p.gateway, "metrics-push", "", "push the run's final metrics to this Prometheus Pushgateway `URL` (…/metrics/job/webnovel-backup/instance/<host>/command/<command>); a failed push is a warning")
}

// wrap runs a command no coordinator counts (verify, prune, test-backup-restore), then
// counts its run and pushes its metrics. A push that fails is a warning: the backup is not
// worse for it.
func (p *pushOptions) wrap(cmd *cobra.Command, run func() error) error {
	if err := p.check(); err != nil {
		return err
	}
	p.record = true
	if p.gateway != "" {
		extendStopGrace(cmd.Context(), reportGrace)
	}
	start := time.Now()
	err := run()
	p.finish(cmd.Context(), cmd.Name(), time.Since(start), err)
	return err
}

// check refuses a --metrics-push that is no http:// or https:// URL before the run, rather
// than warn after it.
func (p *pushOptions) check() error {
	if p.gateway == "" {
		return nil
	}
	u, err := redact.ParseURL(p.gateway)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErrorf("--metrics-push %s: want an http:// or https:// URL", redact.URL(p.gateway))
	}
	return nil
}

// finish counts the run (when record says so) and pushes the metrics, if asked.
func (p *pushOptions) finish(ctx context.Context, command string, took time.Duration, err error) {
	if p.record {
		telemetry.RecordRun(metricKind(command), outcome.Of(err), took)
	}
	if p.gateway == "" {
		return
	}
	if perr := telemetry.Push(context.WithoutCancel(ctx), p.gateway, command); perr != nil {
		slog.Warn("metrics were not pushed", "gateway", redact.Webhook(p.gateway), "err", perr)
	}
}

// metricKind is a command's name as a metric label value.
func metricKind(command string) string {
	if command == "test-backup-restore" {
		return "test_backup_restore"
	}
	return command
}

// runHooks are the flags of backup and restore that reach outside the run: --pre-hook,
// --post-hook, --hook-timeout, --notify, --notify-on and --metrics-push. A command keeps a
// pointer, so that runX's copy of the options reports to the same one.
type runHooks struct {
	preHook, postHook string
	timeout           time.Duration
	notifyURL         string
	notifyOn          string
	push              pushOptions

	command string
	out     io.Writer
	// started is true once the pre-hook passed (or there is none): only then does the
	// post-hook run.
	started bool
	// report builds the command's final JSON report for an error: the command sets one
	// without a run's report with the flags, and the run's own with done.
	report func(error) any
	// ran is true once done was called: the coordinator ran, and counted the run in the
	// metrics. A command stopped before (a pre-hook, the preflight) is counted by wrap, so
	// that the failure alert sees it.
	ran bool
}

// AddFlags adds the hook, notification and push flags to f.
func (h *runHooks) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&h.preHook, "pre-hook", "", "run this shell `command` (sh -c) before the run; if it fails, the run does not start (nothing is changed)")
	f.StringVar(&h.postHook, "post-hook", "", "run this shell `command` (sh -c) after the run, whatever its outcome, with WNB_STATUS, WNB_RUN_ID, WNB_BACKUP_PATH, WNB_FILES, WNB_ROWS, WNB_BYTES… in its environment; if it fails, a run that succeeded exits 3")
	f.DurationVar(&h.timeout, "hook-timeout", hooks.DefaultTimeout, "kill a hook (and what it started) that runs longer than this")
	f.StringVar(&h.notifyURL, "notify", "", "POST the final JSON report to this `URL` (secrets redacted; 3 tries); see --notify-on")
	f.StringVar(&h.notifyOn, "notify-on", notifyOnFailure, "when to --notify: failure (any status but complete and dry-run) or always")
	h.push.AddFlags(f)
}

// check refuses hook and notification flags that cannot work.
func (h *runHooks) check() error {
	switch {
	case h.timeout <= 0:
		return usageErrorf("--hook-timeout must be positive")
	case h.notifyOn != notifyOnFailure && h.notifyOn != notifyOnAlways:
		return usageErrorf("--notify-on %q: want %s or %s", h.notifyOn, notifyOnFailure, notifyOnAlways)
	}
	if h.notifyURL != "" {
		u, err := redact.ParseURL(h.notifyURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErrorf("--notify %s: want an http:// or https:// URL", redact.Webhook(h.notifyURL))
		}
	}
	return h.push.check()
}

// wrap runs the command between its hooks: the command calls pre once its options are
// checked, and done with its report builder; wrap then runs the post-hook, notifies and
// pushes the metrics. A failing post-hook turns a success into a partial run (exit 3).
func (h *runHooks) wrap(cmd *cobra.Command, run func() error) error {
	if h == nil {
		return run()
	}
	h.command, h.out = cmd.Name(), cmd.ErrOrStderr()
	if h.postHook != "" || h.notifyURL != "" || h.push.gateway != "" {
		extendStopGrace(cmd.Context(), reportGrace)
	}
	start := time.Now()
	if err := h.check(); err != nil {
		return err // nothing ran, and where to report it is what is wrong
	}
	err := run()
	ctx := context.WithoutCancel(cmd.Context()) // an interrupted run is reported too
	if h.started && h.postHook != "" {
		err = h.runPost(ctx, cmd.Name(), err)
	}
	h.sendNotification(ctx, cmd.Name(), err)
	h.push.record = !h.ran
	h.push.finish(ctx, cmd.Name(), time.Since(start), err)
	return err
}

// pre runs the pre-hook, with env (the run's destination or source) in its environment. Its
// failure stops the command before anything is changed.
func (h *runHooks) pre(ctx context.Context, env hooks.Env) error {
	if h == nil {
		return nil
	}
	if h.preHook != "" {
		env["COMMAND"], env["HOOK"] = h.command, "pre"
		hook := hooks.Hook{Name: "pre-hook", Command: h.preHook, Timeout: h.timeout, Output: h.out}
		if err := hook.Run(ctx, env); err != nil {
			return outcome.Errorf(outcome.Failed, "%w; the run did not start, nothing was changed", err)
		}
	}
	h.started = true
	return nil
}

// done gives the command's final report builder (its --json report for an error).
func (h *runHooks) done(report func(error) any) {
	if h != nil {
		h.report, h.ran = report, true
	}
}

// finalReport is the command's --json report for err (a minimal one if the command gave no
// builder).
func (h *runHooks) finalReport(command string, err error) any {
	if h.report != nil {
		return h.report(err)
	}
	return struct {
		Command string         `json:"command"`
		Status  outcome.Status `json:"status"`
		Error   string         `json:"error,omitempty"`
	}{command, outcome.Of(err).Status, errText(err)}
}

// runPost runs the post-hook with the final report in its environment and returns the
// command's error: a failed hook is a warning, and a successful run becomes partial.
func (h *runHooks) runPost(ctx context.Context, command string, err error) error {
	env := hooks.ReportEnv(h.finalReport(command, err))
	env["COMMAND"], env["HOOK"] = command, "post"
	hook := hooks.Hook{Name: "post-hook", Command: h.postHook, Timeout: h.timeout, Output: h.out}
	herr := hook.Run(ctx, env)
	if herr == nil {
		return err
	}
	fmt.Fprintf(h.out, "warning: %v\n", herr)
	if outcome.Of(err).Status == outcome.Complete {
		return outcome.Errorf(outcome.Partial, "the %s succeeded, but %w", command, herr)
	}
	return err
}

// sendNotification posts the final report when --notify asks for it; a notification that
// cannot be delivered is a warning.
func (h *runHooks) sendNotification(ctx context.Context, command string, err error) {
	if h.notifyURL == "" {
		return
	}
	if s := outcome.Of(err).Status; h.notifyOn != notifyOnAlways && (s == outcome.Complete || s == outcome.DryRun) {
		return
	}
	sender := notify.Sender{URL: h.notifyURL}
	if nerr := sender.Send(ctx, h.finalReport(command, err)); nerr != nil {
		fmt.Fprintf(h.out, "warning: %v\n", nerr)
	}
}
