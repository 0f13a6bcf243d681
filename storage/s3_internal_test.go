package storage

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestParseS3URL(t *testing.T) {
	d, err := parseS3URL("s3://media/site/files/?region=eu-west-1&endpoint=http://127.0.0.1:9000/&path_style=true&part_size=16777216&concurrency=8&parallel_above=0&timeout=30s&checksum=none")
	if err != nil {
		t.Fatal(err)
	}
	want := s3Driver{bucket: "media", root: "site/files/", endpoint: "http://127.0.0.1:9000", region: "eu-west-1",
		pathStyle: true, partSize: 16 << 20, concurrency: 8, parallelMin: 0, timeout: 30 * time.Second, checksum: false}
	if *d != want {
		t.Errorf("parsed %+v\nwant   %+v", *d, want)
	}
	d, err = parseS3URL("s3://media")
	if err != nil {
		t.Fatal(err)
	}
	if d.root != "" || d.partSize != defaultPartSize || d.concurrency != defaultConcurrency || !d.checksum || d.full("a/b") != "a/b" {
		t.Errorf("defaults: %+v", *d)
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	mtime := time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC)
	o := objectFrom("k", 3, time.Unix(5, 0), metadata(Object{Mode: 0o640 | fs.ModeDir, ModTime: mtime}))
	if o.Mode != 0o640 || !o.ModTime.Equal(mtime) || o.Size != 3 || o.Key != "k" {
		t.Errorf("round trip: %+v", o)
	}
	// Metadata from other tools (or none) falls back to LastModified, mode 0.
	last := time.Unix(5, 0)
	for _, meta := range []map[string]string{nil, {"Mode": "rwx", "MTIME": "yesterday"}, {"mode": "99999999999"}} {
		if o := objectFrom("k", 0, last, meta); o.Mode != 0 || !o.ModTime.Equal(last) {
			t.Errorf("objectFrom(%v) = %+v", meta, o)
		}
	}
	if m := metadata(Object{}); len(m) != 0 {
		t.Errorf("metadata of nothing = %v", m)
	}
}

func TestCopySource(t *testing.T) {
	for key, want := range map[string]string{
		"a/b.txt":          "bkt/a/b.txt",
		"sp ace/plus+x":    "bkt/sp%20ace/plus%2Bx",
		"章/é?#%":           "bkt/%E7%AB%A0/%C3%A9%3F%23%25",
		"deep/er/and/more": "bkt/deep/er/and/more",
	} {
		if got := copySource("bkt", key); got != want {
			t.Errorf("copySource(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestJoinIsS3(t *testing.T) {
	for _, tc := range []struct{ base, key, want string }{
		{"s3://b/backups?region=x&path_style=true", "backup_1", "s3://b/backups/backup_1?region=x&path_style=true"},
		{"s3://b", "backup_1", "s3://b/backup_1"},
		{"s3://b/", "x/y", "s3://b/x/y"},
		{"s3://b/p/", "a b", "s3://b/p/a%20b"},
		{"/srv/backups", "backup_1", "/srv/backups/backup_1"},
		{"backups", "a/b", "backups/a/b"},
		{"file:///srv/backups", "backup_1", "file:///srv/backups/backup_1"},
	} {
		if got := Join(tc.base, tc.key); got != tc.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tc.base, tc.key, got, tc.want)
		}
	}
	for loc, want := range map[string]bool{"s3://b/p": true, "S3://b": true, "s3:/b": false, "/srv/s3://x": false, "": false, "file:///x": false} {
		if IsS3(loc) != want {
			t.Errorf("IsS3(%q) = %v", loc, !want)
		}
	}
	// A joined S3 location still opens at the joined prefix.
	d, err := parseS3URL(Join("s3://b/backups?region=x", "backup_1 é"))
	if err != nil || d.root != "backups/backup_1 é/" || d.region != "x" {
		t.Errorf("parse(Join(...)) = %+v, %v", d, err)
	}
}

func FuzzParseS3URL(f *testing.F) {
	for _, s := range []string{"s3://b/p?region=x", "s3://b/p?part_size=1024&timeout=1s", "s3://u:p@b/", "s3://b/%2e%2e/x", "s3://b/p?endpoint=http://[::1]:9/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseS3URL(s)
		if err != nil {
			return
		}
		if d.bucket == "" || d.partSize <= 0 || d.concurrency < 1 || d.timeout <= 0 {
			t.Fatalf("accepted %q as %+v", s, *d)
		}
		if d.root != "" && (CheckKey(strings.TrimSuffix(d.root, "/")) != nil || !strings.HasSuffix(d.root, "/")) {
			t.Fatalf("accepted %q with root %q", s, d.root)
		}
		if strings.Contains(d.describe(), "@") && !strings.Contains(s, "@") {
			t.Fatalf("describe invented credentials: %q", d.describe())
		}
	})
}

func FuzzJoin(f *testing.F) {
	f.Add("s3://b/p?region=x", "k/v")
	f.Add("/srv/x", "a b")
	f.Fuzz(func(t *testing.T, base, key string) {
		got := Join(base, key)
		if IsS3(base) && CheckKey(key) == nil && !IsS3(got) {
			t.Fatalf("Join(%q, %q) = %q lost the scheme", base, key, got)
		}
	})
}

// TestEndpointRefusals: an endpoint that could carry a secret (userinfo, a query, a fragment)
// or is not HTTP is refused without quoting the secret: the location travels in every task.
func TestEndpointRefusals(t *testing.T) {
	const secret = "Tk9secret"
	for _, endpoint := range []string{
		"http://u:" + secret + "@127.0.0.1:9",
		"http://127.0.0.1:9/?token=" + secret,
		"https://s3.example/?X-Amz-Security-Token=" + secret,
		"http://127.0.0.1:9/#" + secret,
		"ftp://127.0.0.1:9",
	} {
		_, err := parseS3URL("s3://b/p?endpoint=" + url.QueryEscape(endpoint))
		if err == nil {
			t.Errorf("endpoint %q accepted", endpoint)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("endpoint %q: the error quotes the secret: %v", endpoint, err)
		}
	}
}

// TestListedKey: a key a service percent-encoded, as asked (encoding-type=url: "+" for a space,
// "%2B" for "+", control characters that XML cannot carry), comes back as stored; from a
// service that ignored the request (no EncodingType in its answer) a key is taken as it is.
func TestListedKey(t *testing.T) {
	for _, tc := range []struct {
		enc       types.EncodingType
		in, want  string
		wantError bool
	}{
		{types.EncodingTypeUrl, "a+b.txt", "a b.txt", false},
		{types.EncodingTypeUrl, "a%2Bb.txt", "a+b.txt", false},
		{types.EncodingTypeUrl, "100%25.csv", "100%.csv", false},
		{types.EncodingTypeUrl, "%01ctrl.txt", "\x01ctrl.txt", false},
		{types.EncodingTypeUrl, "%ED%95%9C%EA%B8%80/x.txt", "한글/x.txt", false},
		{types.EncodingTypeUrl, "100%.csv", "", true},
		{"", "100%.csv", "100%.csv", false},
		{"", "a+b.txt", "a+b.txt", false},
	} {
		got, err := listedKey(tc.enc, tc.in)
		if (err != nil) != tc.wantError || got != tc.want {
			t.Errorf("listedKey(%q, %q) = %q, %v; want %q (error %v)", tc.enc, tc.in, got, err, tc.want, tc.wantError)
		}
	}
}

// TestListingGuard: empty pages that say more follow are taken, up to maxEmptyPages in a row;
// a page with a key, or the last page, starts the count again.
func TestListingGuard(t *testing.T) {
	var g listingGuard
	for i := 0; i < maxEmptyPages-1; i++ {
		if err := g.check(0, true); err != nil {
			t.Fatalf("empty page %d: %v", i+1, err)
		}
	}
	if err := g.check(3, true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxEmptyPages-1; i++ {
		g.check(0, true)
	}
	if err := g.check(0, true); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("page %d empty in a row: %v", maxEmptyPages, err)
	}
}

// TestEndlessListingStops: a service that answers every listing page with no key and a new
// token saying more follow is given up on after maxEmptyPages, naming why, not followed for ever.
func TestEndlessListingStops(t *testing.T) {
	var pages atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := pages.Add(1)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bkt</Name><Prefix>x/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>t%d</NextContinuationToken></ListBucketResult>`, n)
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	b, err := Open(t.Context(), "s3://bkt/x?path_style=true&region=us-east-1&endpoint="+url.QueryEscape(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Walk(t.Context(), "", func(Object) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no key") || pages.Load() != maxEmptyPages {
		t.Fatalf("after %d pages: %v", pages.Load(), err)
	}
}
