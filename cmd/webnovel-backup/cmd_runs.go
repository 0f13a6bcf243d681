package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/messages"
)

// runsOptions are the flags of runs.
type runsOptions struct {
	asJSON bool
}

// AddFlags adds runs' flags to f.
func (o *runsOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.asJSON, "json", false, "print the runs as JSON")
}

func newRunsCommand(g *globals) *cobra.Command {
	var o runsOptions
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List the runs recorded on the cluster and their state",
		Long: `Lists backup and restore runs from the cluster's run registry, newest first. A run whose
coordinator stopped sending heartbeats is shown as abandoned: finish it with
` + "`webnovel-backup backup --resume RUN_ID`" + `.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runRuns(cmd.Context(), o, g, consoleOf(cmd)) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runRuns lists the cluster's runs.
func runRuns(ctx context.Context, o runsOptions, g *globals, con console) error {
	g.resolve()
	if g.nats == "" {
		return usageErrorf("runs are recorded on a cluster: give --nats or NATS_URL (the embedded server keeps nothing)")
	}
	cfg, err := g.pipelineConfig(0)
	if err != nil {
		return err
	}
	s, err := pipeline.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	runs, err := s.Coordinator.Runs(ctx)
	if err != nil {
		return err
	}
	if o.asJSON {
		return printJSON(con.out, runsJSON(runs, time.Now()))
	}
	printRuns(con.out, runs, time.Now())
	return nil
}

// runsJSON is the --json list of runs.
func runsJSON(runs []*messages.RunRecord, now time.Time) any {
	type shown struct {
		ID, Kind, State, Coordinator, Path, Error string
		Started, Finished                         time.Time
	}
	var list []shown
	for _, r := range runs {
		list = append(list, shown{r.ID, r.Kind, r.Shown(now), r.Coordinator, r.Path, r.Error, r.Started, r.Finished})
	}
	return list
}

func printRuns(out io.Writer, runs []*messages.RunRecord, now time.Time) {
	fmt.Fprintf(out, "%-28s %-8s %-10s %-20s %s\n", "RUN", "KIND", "STATE", "STARTED", "RESULT")
	for _, r := range runs {
		result := r.Path
		if r.Error != "" {
			result = r.Error
		}
		fmt.Fprintf(out, "%-28s %-8s %-10s %-20s %s\n", r.ID, r.Kind, r.Shown(now), r.Started.Local().Format("2006-01-02 15:04:05"), result)
	}
}
