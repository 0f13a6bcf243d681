// Command fakes3 is a development tool for the benchmarks: an in-memory S3 service (gofakes3,
// s3mem backend) on a loopback port that waits a fixed latency before answering each request,
// as a distant S3 would.
//
//	go run ./bench/fakes3 -latency 20ms -bucket media -load media/platform=/tmp/data
//
// It prints its endpoint URL as the first line of standard output once it is ready, then
// serves until interrupted. Any access key and secret are accepted. GET /_stats answers the
// requests counted so far by kind (get_object, put_object, copy_object, head, list, …; GETs
// and PUTs of the content store's objects/sha256/… keys as get_file_object, put_file_object) as
// JSON; /_stats?reset=1 also zeroes them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		addr    = flag.String("addr", "127.0.0.1:0", "listen address (port 0: any free port)")
		latency = flag.Duration("latency", 0, "delay added before answering each request")
		buckets listFlag
		loads   listFlag
	)
	flag.Var(&buckets, "bucket", "create this bucket (repeatable, or comma-separated)")
	flag.Var(&loads, "load", "load a folder's files: bucket[/prefix]=DIR (repeatable; creates the bucket)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *latency, buckets, loads); err != nil {
		fmt.Fprintln(os.Stderr, "fakes3:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string, latency time.Duration, buckets, loads []string) error {
	be := s3mem.New()
	made := map[string]bool{}
	create := func(name string) error {
		if made[name] {
			return nil
		}
		made[name] = true
		if err := be.CreateBucket(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
		return nil
	}
	for _, b := range buckets {
		for _, name := range strings.Split(b, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if err := create(name); err != nil {
					return err
				}
			}
		}
	}
	for _, l := range loads {
		target, dir, ok := strings.Cut(l, "=")
		if !ok || target == "" || dir == "" {
			return fmt.Errorf("-load %q: want bucket[/prefix]=DIR", l)
		}
		bucket, prefix, _ := strings.Cut(target, "/")
		if err := create(bucket); err != nil {
			return err
		}
		n, size, err := load(be, bucket, strings.Trim(prefix, "/"), dir)
		if err != nil {
			return fmt.Errorf("load %s into %s: %w", dir, target, err)
		}
		slog.Info("loaded", "dir", dir, "into", target, "files", n, "bytes", size)
	}

	var requests atomic.Int64
	st := newStats()
	s3 := gofakes3.New(be, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == statsPath {
			st.serve(w, r)
			return
		}
		requests.Add(1)
		st.count(r)
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		s3.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("http://%s\n", ln.Addr())
	os.Stdout.Sync()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	slog.Info("stopped", "requests", requests.Load())
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// statsPath serves the request counts as JSON (no bucket can be named "_stats"); with
// ?reset=1 it zeroes them after answering, so a benchmark counts one run's requests.
const statsPath = "/_stats"

// stats counts requests by kind: GET and PUT of object data apart from listings, HEADs,
// server-side copies, deletes and multipart calls.
type stats struct {
	mu     sync.Mutex
	counts map[string]int64
}

func newStats() *stats { return &stats{counts: map[string]int64{}} }

// kind classifies one request.
func kind(r *http.Request) string {
	q := r.URL.Query()
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	object := len(parts) == 2 && parts[1] != ""
	switch {
	case q.Has("uploads") || q.Has("uploadId"):
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			return "upload_part_copy"
		}
		return "multipart"
	case r.Method == http.MethodGet && !object:
		return "list"
	case r.Method == http.MethodGet && fileData(parts[1]):
		return "get_file_object"
	case r.Method == http.MethodGet:
		return "get_object"
	case r.Method == http.MethodHead:
		return "head"
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		return "copy_object"
	case r.Method == http.MethodPut && object && fileData(parts[1]):
		return "put_file_object"
	case r.Method == http.MethodPut && object:
		return "put_object"
	case r.Method == http.MethodDelete || (r.Method == http.MethodPost && q.Has("delete")):
		return "delete"
	}
	return strings.ToLower(r.Method)
}

// fileData is whether an object key holds file content: an object of the content-addressed
// store (objects/sha256/…), apart from the backups' own lists, fixtures and manifests.
func fileData(key string) bool { return strings.Contains("/"+key, "/objects/sha256/") }

func (s *stats) count(r *http.Request) {
	k := kind(r)
	s.mu.Lock()
	s.counts[k]++
	s.mu.Unlock()
}

func (s *stats) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data, err := json.Marshal(s.counts)
	if r.URL.Query().Get("reset") == "1" {
		s.counts = map[string]int64{}
	}
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
}

// load stores every regular file under dir as prefix/relative-path in bucket.
func load(be *s3mem.Backend, bucket, prefix, dir string) (files, size int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		key := path.Join(prefix, filepath.ToSlash(rel))
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if _, err := be.PutObject(bucket, key, map[string]string{}, f, fi.Size(), nil); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		files++
		size += fi.Size()
		return nil
	})
	return files, size, err
}
