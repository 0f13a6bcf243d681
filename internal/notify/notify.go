// Package notify POSTs a run's final JSON report to a webhook (--notify URL), retried with
// back-off, never with a secret in it: every URL the report carries passes through
// internal/redact before it is sent.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/webnovel/webnovel-backup/internal/redact"
)

// Tries is how many times a notification is attempted.
const Tries = 3

// DefaultBackoff is the wait before the second attempt; it doubles before each later one.
const DefaultBackoff = time.Second

// attemptTimeout bounds one POST: a webhook that hangs must not hold a finished run open.
const attemptTimeout = 15 * time.Second

// Sender posts reports to one webhook.
type Sender struct {
	// URL is the webhook. Credentials in it (user:password@, a token in the query) are
	// used for the request and never printed.
	URL string
	// Backoff is the wait before the second attempt (doubling after); 0 means DefaultBackoff.
	Backoff time.Duration
	// Client defaults to a client with a per-attempt timeout.
	Client *http.Client
}

// Body is the JSON that Send posts for report: the report as marshalled, with every string
// that holds a location (URL, DSN) redacted, wherever it sits.
func Body(report any) ([]byte, error) {
	raw, err := json.Marshal(report)
	if err != nil {
		return nil, fmt.Errorf("notification: encode the report: %w", err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("notification: decode the report: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a webhook shows "&", not "\u0026"
	if err := enc.Encode(redactStrings(v)); err != nil {
		return nil, fmt.Errorf("notification: encode the report: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// redactStrings applies redact.URL to every string in a decoded JSON value: an error message
// may quote a database URL with its password.
func redactStrings(v any) any {
	switch x := v.(type) {
	case string:
		return redact.URL(x)
	case []any:
		for i := range x {
			x[i] = redactStrings(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = redactStrings(x[k])
		}
	}
	return v
}

// Send posts report, trying up to Tries times with a doubling wait between tries while the
// webhook cannot be reached or answers with a server error (5xx) or 429; another 4xx is final.
// The error names the webhook redacted.
func (s *Sender) Send(ctx context.Context, report any) error {
	body, err := Body(report)
	if err != nil {
		return err
	}
	wait := s.Backoff
	if wait <= 0 {
		wait = DefaultBackoff
	}
	for try := 1; ; try++ {
		retry, err := s.post(ctx, body)
		if err == nil {
			return nil
		}
		if !retry || try == Tries {
			return fmt.Errorf("notify %s: %w (after %d tries)", redact.Webhook(s.URL), err, try)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("notify %s: %w", redact.Webhook(s.URL), ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// hideURL is err's text with the webhook's URL shown as redact.Webhook shows it: the client's
// errors quote it whole, path (a chat webhook's secret) and query included.
func (s *Sender) hideURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact.Webhook(s.URL)
	}
	return redact.Text(redact.ParseError(err).Error())
}

// errRejected is a final answer from the webhook: trying again would get the same.
var errRejected = errors.New("rejected")

// post makes one attempt; retry says whether another may succeed.
func (s *Sender) post(ctx context.Context, body []byte) (retry bool, err error) {
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: attemptTimeout}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("request: %s", s.hideURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "webnovel-backup")
	resp, err := client.Do(req)
	if err != nil {
		return true, errors.New(s.hideURL(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("webhook answered %s", resp.Status)
	default:
		return false, fmt.Errorf("webhook answered %s: %w", resp.Status, errRejected)
	}
}
