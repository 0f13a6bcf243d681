package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/progress"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/workers"
)

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
	// memProfile is the hidden --memprofile: a pprof heap profile taken near the peak heap.
	memProfile string
}

// AddFlags adds the shared flags (persistent: every command has them).
func (g *globals) AddFlags(pf *pflag.FlagSet) {
	pf.StringVar(&g.database, "database", "", "database `URL`, dj-database-url form (env DATABASE_URL; default sqlite:///db.sqlite3)")
	pf.StringVar(&g.storage, "storage", "", "platform storage: a `folder`, file:// URL or s3://bucket/prefix (env STORAGE_URL; default ./media)")
	pf.StringVar(&g.nats, "nats", "", "NATS `URL` of a JetStream cluster (env NATS_URL; default: an embedded server)")
	pf.IntVar(&g.workers, "workers", 4, "in-process workers (0 leaves all work to worker processes: webnovel-backup worker)")
	// Zero is "not asked": streams and the consumer are created with the defaults, and existing
	// ones are never changed; an asked value that differs from theirs is a warning.
	pf.IntVar(&g.replicas, "replicas", 0, "JetStream stream replicas when the streams are created (default 1; 3 on a three-node cluster)")
	pf.DurationVar(&g.ackWait, "ack-wait", 0, "how long a task may go without a worker's progress signal before another worker gets it (default 30s)")
	pf.IntVar(&g.maxDeliver, "max-deliver", 0, "attempts of one task before the run fails (default 5)")
	pf.StringVar(&g.natsAuth.CredsFile, "nats-creds", "", "NATS credentials `file` (env NATS_CREDS)")
	pf.StringVar(&g.natsAuth.NkeyFile, "nats-nkey", "", "NATS nkey seed `file` (env NATS_NKEY)")
	pf.StringVar(&g.natsAuth.User, "nats-user", "", "NATS `user` (env NATS_USER)")
	pf.StringVar(&g.natsAuth.Password, "nats-password", "", "NATS `password` (env NATS_PASSWORD)")
	pf.StringVar(&g.natsAuth.Token, "nats-token", "", "NATS `token` (env NATS_TOKEN)")
	pf.StringVar(&g.natsAuth.CAFile, "nats-ca", "", "CA certificate `file` that signs the NATS servers' certificates (env NATS_CA)")
	pf.StringVar(&g.natsAuth.CertFile, "nats-cert", "", "client certificate `file` for NATS mutual TLS (env NATS_CERT)")
	pf.StringVar(&g.natsAuth.KeyFile, "nats-key", "", "client key `file` for NATS mutual TLS (env NATS_KEY)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "log every task")
	pf.StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this `file` (for go tool pprof)")
	pf.MarkHidden("cpuprofile")
	pf.StringVar(&g.memProfile, "memprofile", "", "write a heap profile of the command, taken at its peak heap, to this `file` (for go tool pprof)")
	pf.MarkHidden("memprofile")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "no progress and no informational logs, only warnings and errors")
	pf.StringVar(&g.logFormat, "log-format", "text", "log `format`: text or json")
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

// pipelineConfig is the queue set-up every command that runs tasks shares, with inProcess
// workers in this process.
func (g *globals) pipelineConfig(inProcess int) (pipeline.Config, error) {
	opts, err := g.natsAuth.Options()
	if err != nil {
		return pipeline.Config{}, usageErrorf("%w", err)
	}
	if g.replicas < 0 || g.ackWait < 0 || g.maxDeliver < 0 {
		return pipeline.Config{}, usageErrorf("--replicas, --ack-wait and --max-deliver must not be negative")
	}
	return pipeline.Config{
		NATSURL: g.nats, NATSOptions: opts, Workers: inProcess,
		DatabaseURL: g.database, StorageURL: g.storage,
		Queue: g.queueConfig(), StallTimeout: workers.DefaultStallTimeout,
	}, nil
}

// queueConfig is the streams' and consumer's shape from the flags.
func (g *globals) queueConfig() queue.Config {
	return queue.Config{Replicas: g.replicas, AckWait: g.ackWait, MaxDeliver: g.maxDeliver}
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
	var h slog.Handler
	switch g.logFormat {
	case "text":
		h = slog.NewTextHandler(errOut, opts)
	case "json":
		h = slog.NewJSONHandler(errOut, opts)
	default:
		return usageErrorf("--log-format %q: want text or json", g.logFormat)
	}
	// The last guard: an error from deep down may quote a location as it was given.
	slog.SetDefault(slog.New(redact.NewHandler(h)))
	return nil
}

// progress is the display of a run's progress that the flags ask for.
func (g *globals) progress(errOut io.Writer, asJSON bool) *progress.Reporter {
	switch {
	case g.quiet || asJSON:
		return progress.New(nil, progress.Quiet, nil)
	case g.bars:
		return progress.New(errOut, progress.Bars, nil)
	default:
		return progress.New(nil, progress.Lines, slog.Default())
	}
}

// console is where a command talks to its operator.
type console struct {
	in       io.Reader
	out, err io.Writer
}

// consoleOf is cmd's standard input, output and error.
func consoleOf(cmd *cobra.Command) console {
	return console{in: cmd.InOrStdin(), out: cmd.OutOrStdout(), err: cmd.ErrOrStderr()}
}

// printJSON writes v indented: the machine-readable final report.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}
