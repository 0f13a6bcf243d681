package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/webnovel/webnovel-backup/internal/redact"
)

// PushJob is the job label of the metrics a run pushes to a Pushgateway.
const PushJob = "webnovel-backup"

// pushTimeout bounds a push: a gateway that hangs must not hold a finished run open.
const pushTimeout = 15 * time.Second

// PushURL is where Push sends a command's metrics under gateway (the Pushgateway's base URL):
// …/metrics/job/webnovel-backup/instance/<host>/command/<command>. The command is part of the
// group so that a verify pushed after a backup does not replace the backup's metrics.
func PushURL(gateway, host, command string) string {
	return strings.TrimRight(gateway, "/") + "/metrics/job/" + PushJob +
		"/instance/" + url.PathEscape(host) + "/command/" + url.PathEscape(command)
}

// Push sends this process's metrics, in the text exposition format, to the Pushgateway at
// gateway, grouped by this host and command. It POSTs: the gateway replaces only the metric
// families pushed, so a failed run, which has no last-success gauge, leaves the last
// successful run's gauge in place for the stale-backup alert. The error names the gateway
// redacted.
func Push(ctx context.Context, gateway, command string) error {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	body, err := exposition()
	if err != nil {
		return err
	}
	target := PushURL(gateway, host, command)
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	if _, err := redact.ParseURL(gateway); err != nil {
		return fmt.Errorf("push metrics to %s: %w", redact.Webhook(gateway), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("push metrics to %s: %s", redact.Webhook(gateway), redact.URL(redact.ParseError(err).Error()))
	}
	req.Header.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("push metrics to %s: %s", redact.Webhook(gateway), redact.URL(redact.ParseError(err).Error()))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("push metrics to %s: the gateway answered %s: %s", redact.Webhook(gateway), resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// exposition is the registry's metrics in the text format.
func exposition() ([]byte, error) {
	mfs, err := registry().Gather()
	if err != nil {
		return nil, fmt.Errorf("push metrics: gather: %w", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, fmt.Errorf("push metrics: encode %s: %w", mf.GetName(), err)
		}
	}
	return buf.Bytes(), nil
}
