package s3test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
)

// PartCopies wraps a gofakes3 handler (as Start's wrap) with UploadPartCopy, which gofakes3
// lacks: a part upload naming a copy source is served by reading that range of the source
// through the same handler and uploading it as the part. Count, if set, counts the part
// copies served.
func PartCopies(count *atomic.Int64) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			src := r.Header.Get("X-Amz-Copy-Source")
			q := r.URL.Query()
			if r.Method != http.MethodPut || src == "" || q.Get("uploadId") == "" || q.Get("partNumber") == "" {
				h.ServeHTTP(w, r)
				return
			}
			if count != nil {
				count.Add(1)
			}
			servePartCopy(h, w, r, src)
		})
	}
}

// servePartCopy reads the copy source's range and uploads it as the part.
func servePartCopy(h http.Handler, w http.ResponseWriter, r *http.Request, src string) {
	srcPath, err := url.PathUnescape(strings.TrimPrefix(src, "/"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	get := httptest.NewRequest(http.MethodGet, "/"+(&url.URL{Path: srcPath}).EscapedPath(), nil)
	if rng := r.Header.Get("X-Amz-Copy-Source-Range"); rng != "" {
		get.Header.Set("Range", rng)
	}
	got := httptest.NewRecorder()
	h.ServeHTTP(got, get)
	if got.Code != http.StatusOK && got.Code != http.StatusPartialContent {
		w.WriteHeader(got.Code)
		w.Write(got.Body.Bytes())
		return
	}
	body := got.Body.Bytes()
	put := httptest.NewRequest(http.MethodPut, r.URL.String(), bytes.NewReader(body))
	put.Header.Set("Content-Length", strconv.Itoa(len(body)))
	put.ContentLength = int64(len(body))
	up := httptest.NewRecorder()
	h.ServeHTTP(up, put)
	if up.Code != http.StatusOK {
		w.WriteHeader(up.Code)
		w.Write(up.Body.Bytes())
		return
	}
	type result struct {
		XMLName xml.Name `xml:"CopyPartResult"`
		ETag    string   `xml:"ETag"`
	}
	out, _ := xml.Marshal(result{ETag: up.Header().Get("ETag")})
	w.Header().Set("Content-Type", "application/xml")
	fmt.Fprintf(w, "%s%s", xml.Header, out)
}
