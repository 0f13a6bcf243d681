package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/redact"
)

// probeOptions are the flags of probe.
type probeOptions struct {
	timeout time.Duration
}

// AddFlags adds probe's flags to f.
func (o *probeOptions) AddFlags(f *pflag.FlagSet) {
	f.DurationVar(&o.timeout, "timeout", 3*time.Second, "how long to wait for the answer")
}

func newProbeCommand(g *globals) *cobra.Command {
	var o probeOptions
	cmd := &cobra.Command{
		Use:   "probe [URL]",
		Short: "Exit 0 if a health endpoint answers 2xx (a container health check without curl)",
		Long: `GET URL (default http://127.0.0.1:8081/readyz, the worker's readiness endpoint) and exit 0 on a
2xx answer, 1 otherwise. The container image has no shell or curl; Docker and Compose health
checks run this instead.`,
		Example: `  webnovel-backup probe
  webnovel-backup probe http://127.0.0.1:8081/healthz`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error { return runProbe(cmd.Context(), o, consoleOf(cmd), args) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runProbe GETs the URL (args[0], or the worker's readiness endpoint) and prints the answer.
func runProbe(ctx context.Context, o probeOptions, con console, args []string) error {
	url := "http://127.0.0.1:8081/readyz"
	if len(args) == 1 {
		url = args[0]
	}
	shown := redact.Webhook(url) // a health URL may carry a token: its scheme and host only
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return usageErrorf("probe: %s is not an http:// or https:// URL", shown)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usageErrorf("probe %s: %v", shown, redact.ParseError(err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %s", shown, redact.Text(redact.ParseError(err).Error()))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: %s: %s", shown, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprint(con.out, string(body))
	return nil
}
