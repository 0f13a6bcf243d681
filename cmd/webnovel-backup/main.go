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
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
)

func main() {
	setMemoryLimit(os.Getenv)
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
