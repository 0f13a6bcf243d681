package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhook is a local HTTP server that answers with the given statuses in turn (the last one
// repeated) and records each request's body.
type webhook struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	bodies   []string
	auth     []string
}

func newWebhook(t *testing.T, statuses ...int) *webhook {
	t.Helper()
	w := &webhook{statuses: statuses}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		n := len(w.bodies)
		w.bodies = append(w.bodies, string(body))
		u, p, _ := r.BasicAuth()
		w.auth = append(w.auth, u+":"+p)
		w.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			rw.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		rw.WriteHeader(w.statuses[min(n, len(w.statuses)-1)])
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhook) requests() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.bodies...)
}

// A webhook that fails transiently is tried again, up to three times in all; a refusal (4xx)
// is final; every try posts the same report.
func TestSendRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		tries    int
		wantErr  string
	}{
		{"accepted at once", []int{200}, 1, ""},
		{"accepted on the third try", []int{503, 502, 204}, 3, ""},
		{"rate limited then accepted", []int{429, 200}, 2, ""},
		{"down for good", []int{500}, 3, "500 Internal Server Error (after 3 tries)"},
		{"refused", []int{400, 200}, 1, "400 Bad Request: rejected (after 1 tries)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWebhook(t, tt.statuses...)
			s := Sender{URL: w.URL + "/hook", Backoff: time.Millisecond}
			err := s.Send(context.Background(), map[string]any{"status": "failed", "run_id": "r1"})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			got := w.requests()
			if len(got) != tt.tries {
				t.Fatalf("%d tries, want %d", len(got), tt.tries)
			}
			for _, b := range got {
				var r map[string]string
				if err := json.Unmarshal([]byte(b), &r); err != nil || r["status"] != "failed" || r["run_id"] != "r1" {
					t.Fatalf("body %s: %v", b, err)
				}
			}
		})
	}
}

// No secret of the report (a database URL's password quoted in an error, a token in a query)
// reaches the webhook, and the webhook's own credentials are used but never printed.
func TestSendRedactsSecrets(t *testing.T) {
	w := newWebhook(t, 500)
	report := map[string]any{
		"status": "failed",
		"error":  "connect postgres://app:db-s3cret@127.0.0.1:5432/webnovel: connection refused",
		"nested": []any{map[string]any{"storage": "s3://bucket/x?secret_key=s3-s3cret&region=eu"}},
	}
	s := Sender{URL: strings.Replace(w.URL, "://", "://hook:hook-s3cret@", 1) + "/hook?token=tok-s3cret", Backoff: time.Millisecond}
	err := s.Send(context.Background(), report)
	if err == nil {
		t.Fatal("a webhook answering 500 was not an error")
	}
	bodies := w.requests()
	if len(bodies) != Tries {
		t.Fatalf("%d tries", len(bodies))
	}
	for _, secret := range []string{"db-s3cret", "s3-s3cret", "hook-s3cret", "tok-s3cret"} {
		if strings.Contains(bodies[0], secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("%s leaked:\nbody %s\nerror %v", secret, bodies[0], err)
		}
	}
	if !strings.Contains(bodies[0], "postgres://xxxxx@127.0.0.1:5432/webnovel: connection refused") || !strings.Contains(bodies[0], "region=eu") {
		t.Errorf("the body lost what is not secret: %s", bodies[0])
	}
	if w.auth[0] != "hook:hook-s3cret" {
		t.Errorf("the webhook's credentials were not sent: %q", w.auth[0])
	}
}

// An unreachable webhook is retried and reported, naming the webhook without its secrets.
func TestSendUnreachable(t *testing.T) {
	w := newWebhook(t, 200)
	host := strings.TrimPrefix(w.URL, "http://")
	w.Close()
	// A chat webhook's secret is its path; a base64 password may hold "/".
	for _, url := range []string{
		"http://u:pw-s3cret@" + host,
		"http://" + host + "/services/T0/B0/path-s3cret?code=code-s3cret",
		"http://u:pw/s3cret@" + host + "/x", // does not parse: refused at once
	} {
		err := (&Sender{URL: url, Backoff: time.Millisecond}).Send(context.Background(), map[string]string{"status": "failed"})
		if err == nil || !strings.Contains(err.Error(), "notify ") {
			t.Fatalf("err = %v", err)
		}
		for _, secret := range []string{"s3cret", "T0/B0"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s leaked: %v", secret, err)
			}
		}
	}
}
