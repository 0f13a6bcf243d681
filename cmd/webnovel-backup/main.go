// Command webnovel-backup backs up and restores the webnovel platform: its database as Django
// fixtures and its file storage, as a job pipeline on NATS JetStream.
//
// This package only turns flags into calls; the work is done in the packages it wires. Each
// command lives in its cmd_*.go file: an options struct with AddFlags, and a one-line RunE
// that calls runX(ctx, opts, …).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
)

func main() {
	setMemoryLimit(os.Getenv)
	// Before anything logs (tracing's set-up may): the secrets to mask, and a log that masks
	// them until the command picks its format.
	registerSecrets(os.Args[1:], os.Getenv)
	slog.SetDefault(slog.New(redact.NewHandler(slog.NewTextHandler(os.Stderr, nil))))
	os.Exit(runInterruptible(os.Args[1:], os.Stdout, os.Stderr, os.Exit, setupTracing))
}

// run executes one command line and returns its exit code, which outcome.Of decides.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := outcome.AfterCancel(ctx, root.ExecuteContext(ctx))
	pprof.StopCPUProfile() // a no-op unless --cpuprofile started one
	stopMemProfile(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "error:", redact.Text(err.Error()))
	}
	return outcome.Of(err).Code
}

// usageErrorf is a usage error (exit 2), formatted like fmt.Errorf.
func usageErrorf(format string, args ...any) error { return outcome.Usagef(format, args...) }

// usageArgs wraps a cobra argument validator so that its error is a typed usage error.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		return outcome.NewUsage(v(cmd, args))
	}
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "webnovel-backup",
		Short:         "Back up and restore the webnovel platform (database fixtures and file storage)",
		SilenceUsage:  true,
		SilenceErrors: true,
		// A root without a RunE would print its help for an unknown command and exit 0.
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := startCPUProfile(g.cpuProfile); err != nil {
				return err
			}
			startMemProfile(g.memProfile)
			return g.setUpOutput(cmd)
		},
	}
	g.AddFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return outcome.NewUsage(err)
	})
	root.AddCommand(
		newBackupCommand(g), newDemoCommand(g), newRestoreCommand(g), newTestBackupRestoreCommand(g),
		newWorkerCommand(g), newRunsCommand(g), newVerifyCommand(g), newListCommand(g),
		newPruneCommand(g), newDoctorCommand(g), newProbeCommand(g), newInitDBCommand(g), newCopyCommand(g),
	)
	return root
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

// locationEnv are the environment variables that hold locations, which may carry secrets.
var locationEnv = []string{"DATABASE_URL", "STORAGE_URL", "NATS_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}

// registerSecrets gives the redaction the secrets of every location on the command line and
// in the environment that their shape alone would not mask (a password holding a space), so
// that no output holds them, whoever quotes them.
func registerSecrets(args []string, getenv func(string) string) {
	for _, a := range args {
		if _, value, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "--") {
			a = value
		}
		redact.SecretsOf(a)
	}
	for _, name := range locationEnv {
		redact.SecretsOf(getenv(name))
	}
	// OTLP headers are "key=value,…" pairs whose values are credentials (a bearer token).
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		for _, pair := range strings.Split(getenv(name), ",") {
			if _, value, ok := strings.Cut(pair, "="); ok {
				redact.Secret(value)
				if v, err := url.QueryUnescape(value); err == nil {
					redact.Secret(v)
				}
			}
		}
	}
}
