// Package s3test serves an in-process S3 (gofakes3) over HTTP on a loopback port for tests,
// with the AWS SDK pointed at test credentials and away from the host's AWS configuration.
package s3test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Server is a fake S3 service.
type Server struct {
	Backend *s3mem.Backend
	srv     *httptest.Server
	// encodeListings: see EncodeListings.
	encodeListings atomic.Bool
	// uploadKeys: each multipart upload's key as created, by upload id (EncodeListings).
	uploadKeys sync.Map
}

// Env sets test credentials and clears whatever could reach a real account.
func Env(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-do-not-log")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_CA_BUNDLE", "")
}

// Start serves gofakes3 (behind wrap, if given) with the buckets named, until the test ends.
func Start(t testing.TB, wrap func(http.Handler) http.Handler, buckets ...string) *Server {
	t.Helper()
	Env(t)
	s := &Server{Backend: s3mem.New()}
	for _, b := range buckets {
		if err := s.Backend.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	h := s.listings(gofakes3.New(s.Backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	if wrap != nil {
		h = wrap(h)
	}
	s.srv = httptest.NewServer(h)
	t.Cleanup(s.srv.Close)
	return s
}

// Endpoint is the server's base URL (http://127.0.0.1:port).
func (s *Server) Endpoint() string { return s.srv.URL }

// URL is the storage location of prefix in bucket; extra query parameters may follow.
func (s *Server) URL(bucket, prefix, extra string) string {
	u := fmt.Sprintf("s3://%s/%s?endpoint=%s&path_style=true&region=us-east-1", bucket, prefix, url.QueryEscape(s.srv.URL))
	if extra != "" {
		u += "&" + extra
	}
	return u
}

// Put stores an object directly in the backend.
func (s *Server) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	s.put(t, bucket, key, data, map[string]string{})
}

// PutWritten stores an object directly in the backend as if it had been written at at (its
// Last-Modified): an object a process left behind some time ago.
func (s *Server) PutWritten(t testing.TB, bucket, key string, data []byte, at time.Time) {
	t.Helper()
	s.put(t, bucket, key, data, map[string]string{"Last-Modified": at.UTC().Format(http.TimeFormat)})
}

func (s *Server) put(t testing.TB, bucket, key string, data []byte, meta map[string]string) {
	t.Helper()
	if _, err := s.Backend.PutObject(bucket, key, meta, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

// NoConditionalWrites wraps a server as an S3-compatible service without conditional writes:
// a request with If-None-Match or If-Match gets 501 NotImplemented, as such services answer.
func NoConditionalWrites(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != "" {
			w.WriteHeader(http.StatusNotImplemented)
			w.Write([]byte(`<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>`))
			return
		}
		h.ServeHTTP(w, r)
	})
}
