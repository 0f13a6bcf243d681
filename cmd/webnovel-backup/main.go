// Command webnovel-backup backs up and restores the webnovel platform: its database as Django
// fixtures and its file storage, as a job pipeline on NATS JetStream.
//
// This package only turns flags into calls; the work is done in the packages it wires.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/progress"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// Exit codes, as the README lists them.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitPartial = 3
)

// exitError carries an exit code other than 1 through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	flushTraces := setupTracing(ctx)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	flushTraces()
	stop()
	os.Exit(code)
}

// run executes one command line and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	pprof.StopCPUProfile() // a no-op unless --cpuprofile started one
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "error:", err)
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag"):
		return exitUsage
	default:
		return exitFailure
	}
}

// globals are the flags every command shares.
type globals struct {
	database  string
	storage   string
	nats      string
	natsAuth  queue.Auth
	replicas  int
	workers   int
	verbose   bool
	quiet     bool
	logFormat string
	// bars is true when live progress bars are drawn (a terminal, not quiet, text logs).
	bars bool
	// ackWait and maxDeliver shape the shared consumer: every process that declares it must
	// pass the same values, or each one would update it to its own.
	ackWait    time.Duration
	maxDeliver int
	// cpuProfile is the hidden --cpuprofile: a pprof CPU profile of the whole command.
	cpuProfile string
}

// startCPUProfile starts a CPU profile into file ("" does nothing); run stops it.
func startCPUProfile(file string) error {
	if file == "" {
		return nil
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	return nil
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "webnovel-backup",
		Short:         "Back up and restore the webnovel platform (database fixtures and file storage)",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := startCPUProfile(g.cpuProfile); err != nil {
				return err
			}
			return g.setUpOutput(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.database, "database", "", "database URL, dj-database-url form (env DATABASE_URL; default sqlite:///db.sqlite3)")
	pf.StringVar(&g.storage, "storage", "", "platform storage: a folder or file:// URL (env STORAGE_URL; default ./media)")
	pf.StringVar(&g.nats, "nats", "", "NATS URL of a JetStream cluster (env NATS_URL; default: an embedded server)")
	pf.IntVar(&g.workers, "workers", 4, "in-process workers (0 leaves all work to `webnovel-backup worker` processes)")
	pf.IntVar(&g.replicas, "replicas", 1, "JetStream stream replicas (3 on a three-node cluster)")
	pf.DurationVar(&g.ackWait, "ack-wait", 30*time.Second, "how long a task may go without a worker's progress signal before another worker gets it")
	pf.IntVar(&g.maxDeliver, "max-deliver", 5, "attempts of one task before the run fails")
	pf.StringVar(&g.natsAuth.CredsFile, "nats-creds", "", "NATS credentials file (env NATS_CREDS)")
	pf.StringVar(&g.natsAuth.NkeyFile, "nats-nkey", "", "NATS nkey seed file (env NATS_NKEY)")
	pf.StringVar(&g.natsAuth.User, "nats-user", "", "NATS user (env NATS_USER)")
	pf.StringVar(&g.natsAuth.Password, "nats-password", "", "NATS password (env NATS_PASSWORD)")
	pf.StringVar(&g.natsAuth.Token, "nats-token", "", "NATS token (env NATS_TOKEN)")
	pf.StringVar(&g.natsAuth.CAFile, "nats-ca", "", "CA certificate that signs the NATS servers' certificates (env NATS_CA)")
	pf.StringVar(&g.natsAuth.CertFile, "nats-cert", "", "client certificate for NATS mutual TLS (env NATS_CERT)")
	pf.StringVar(&g.natsAuth.KeyFile, "nats-key", "", "client key for NATS mutual TLS (env NATS_KEY)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "log every task")
	pf.StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this file (for go tool pprof)")
	pf.MarkHidden("cpuprofile")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "no progress and no informational logs, only warnings and errors")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(newBackupCommand(g), newDemoCommand(g), newRestoreCommand(g), newTestBackupRestoreCommand(g), newWorkerCommand(g), newRunsCommand(g))
	root.AddCommand(newVerifyCommand(g))
	root.AddCommand(newListCommand(g))
	root.AddCommand(newPruneCommand(g))
	root.AddCommand(newDoctorCommand(g))
	root.AddCommand(newProbeCommand(g))
	return root
}

// resolve applies the environment and Django's defaults to flags left unset.
func (g *globals) resolve() {
	if g.database == "" {
		g.database = os.Getenv("DATABASE_URL")
	}
	if g.database == "" {
		g.database = "sqlite:///db.sqlite3"
	}
	if g.storage == "" {
		g.storage = os.Getenv("STORAGE_URL")
	}
	if g.storage == "" {
		g.storage = "./media"
	}
	if g.nats == "" {
		g.nats = os.Getenv("NATS_URL")
	}
	for _, v := range []struct {
		dst *string
		env string
	}{
		{&g.natsAuth.CredsFile, "NATS_CREDS"}, {&g.natsAuth.NkeyFile, "NATS_NKEY"},
		{&g.natsAuth.User, "NATS_USER"}, {&g.natsAuth.Password, "NATS_PASSWORD"},
		{&g.natsAuth.Token, "NATS_TOKEN"}, {&g.natsAuth.CAFile, "NATS_CA"},
		{&g.natsAuth.CertFile, "NATS_CERT"}, {&g.natsAuth.KeyFile, "NATS_KEY"},
	} {
		if *v.dst == "" {
			*v.dst = os.Getenv(v.env)
		}
	}
}

// pipelineConfig is the queue set-up every command that runs tasks shares.
func (g *globals) pipelineConfig(workers int) (pipeline.Config, error) {
	opts, err := g.natsAuth.Options()
	if err != nil {
		return pipeline.Config{}, usageErrorf("%w", err)
	}
	if g.replicas < 1 {
		return pipeline.Config{}, usageErrorf("--replicas must be 1 or more")
	}
	return pipeline.Config{
		NATSURL: g.nats, NATSOptions: opts, Workers: workers,
		DatabaseURL: g.database, StorageURL: g.storage,
		Queue: g.queueConfig(),
	}, nil
}

// queueConfig is the streams' and consumer's shape from the flags.
func (g *globals) queueConfig() queue.Config {
	return queue.Config{Replicas: g.replicas, AckWait: g.ackWait, MaxDeliver: g.maxDeliver}
}

// redactURL hides a password in a URL for printing.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// setUpOutput chooses the log handler and the progress display for a command.
func (g *globals) setUpOutput(cmd *cobra.Command) error {
	errOut := cmd.ErrOrStderr()
	terminal := false
	if f, ok := errOut.(*os.File); ok {
		terminal = term.IsTerminal(int(f.Fd()))
	}
	level := slog.LevelInfo
	switch {
	case g.verbose:
		level = slog.LevelDebug
	case g.quiet:
		level = slog.LevelWarn
	}
	g.bars = terminal && !g.quiet && g.logFormat == "text"
	if g.bars && !g.verbose {
		level = slog.LevelWarn // informational lines would tear the bars apart
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(errOut, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(errOut, opts)))
	default:
		return usageErrorf("--log-format %q: want text or json", g.logFormat)
	}
	return nil
}

// progress is the display of a run's progress that the flags ask for.
func (g *globals) progress(cmd *cobra.Command, asJSON bool) *progress.Reporter {
	switch {
	case g.quiet || asJSON:
		return progress.New(nil, progress.Quiet, nil)
	case g.bars:
		return progress.New(cmd.ErrOrStderr(), progress.Bars, nil)
	default:
		return progress.New(nil, progress.Lines, slog.Default())
	}
}

// printJSON writes v indented: the machine-readable final report.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
