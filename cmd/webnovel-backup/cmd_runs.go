package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/webnovel/webnovel-backup/internal/pipeline"
)

func newRunsCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List the runs recorded on the cluster and their state",
		Long: `Lists backup and restore runs from the cluster's run registry, newest first. A run whose
coordinator stopped sending heartbeats is shown as abandoned: finish it with
` + "`webnovel-backup backup --resume RUN_ID`" + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			g.resolve()
			if g.nats == "" {
				return usageErrorf("runs are recorded on a cluster: give --nats or NATS_URL (the embedded server keeps nothing)")
			}
			cfg, err := g.pipelineConfig(0)
			if err != nil {
				return err
			}
			s, err := pipeline.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			runs, err := s.Coordinator.Runs(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			now := time.Now()
			if asJSON {
				type shown struct {
					ID, Kind, State, Coordinator, Path, Error string
					Started, Finished                         time.Time
				}
				var list []shown
				for _, r := range runs {
					list = append(list, shown{r.ID, r.Kind, r.Shown(now), r.Coordinator, r.Path, r.Error, r.Started, r.Finished})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			fmt.Fprintf(out, "%-28s %-8s %-10s %-20s %s\n", "RUN", "KIND", "STATE", "STARTED", "RESULT")
			for _, r := range runs {
				result := r.Path
				if r.Error != "" {
					result = r.Error
				}
				fmt.Fprintf(out, "%-28s %-8s %-10s %-20s %s\n", r.ID, r.Kind, r.Shown(now), r.Started.Local().Format("2006-01-02 15:04:05"), result)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the runs as JSON")
	return cmd
}
