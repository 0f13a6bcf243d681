package storage_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

// requestLog records, for every request, the client's address and access key.
type requestLog struct {
	mu    sync.Mutex
	addrs map[string]bool
	keys  []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.addrs[r.RemoteAddr] = true
		auth := r.Header.Get("Authorization")
		if i := strings.Index(auth, "Credential="); i >= 0 {
			l.keys = append(l.keys, strings.SplitN(auth[i+len("Credential="):], "/", 2)[0])
		}
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// openAndStat opens url, looks for one key and closes the bucket, as one backup task does.
func openAndStat(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	b, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Stat(ctx, "missing"); err == nil {
		t.Fatal("stat of a missing key succeeded")
	}
}

// A process opens the same bucket once per task: the opens share one client, so they reuse
// its connections (and its parsed CA bundle) instead of each keeping its own; a change of
// the AWS environment still gets a client of its own, with the new credentials.
func TestS3OpensShareOneClient(t *testing.T) {
	log := &requestLog{addrs: map[string]bool{}}
	srv := s3test.Start(t, log.wrap, "bkt")
	url := srv.URL("bkt", "p", "")
	const opens = 12
	for range opens {
		openAndStat(t, url)
	}
	if n := len(log.addrs); n > 2 {
		t.Errorf("%d sequential opens of one bucket used %d connections, want them to share one", opens, n)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAOTHER")
	openAndStat(t, url)
	if last := log.keys[len(log.keys)-1]; last != "AKIAOTHER" {
		t.Errorf("after AWS_ACCESS_KEY_ID changed, a new open signed with %q, want AKIAOTHER", last)
	}
}
