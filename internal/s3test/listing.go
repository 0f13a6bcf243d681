package s3test

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// EncodeListings makes the server answer a listing that asks for url-encoded keys (of objects,
// ListObjectsV2, or of multipart uploads, with encoding-type=url) as S3 does: every key and
// prefix percent-encoded, and EncodingType url in the answer. gofakes3 ignores the request and
// writes keys into its XML as they are, where a control character, which XML cannot carry,
// becomes U+FFFD. An object listing is served whole, as one page.
func (s *Server) EncodeListings() { s.encodeListings.Store(true) }

// encodedUploads is ListMultipartUploads' answer with url-encoded keys.
type encodedUploads struct {
	XMLName xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListMultipartUploadsResult"`
	gofakes3.ListMultipartUploadsResult
	EncodingType string `xml:"EncodingType"`
}

// encodedList is ListObjectsV2's answer with url-encoded keys.
type encodedList struct {
	XMLName        xml.Name                `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name           string                  `xml:"Name"`
	Prefix         string                  `xml:"Prefix"`
	Delimiter      string                  `xml:"Delimiter,omitempty"`
	EncodingType   string                  `xml:"EncodingType"`
	KeyCount       int                     `xml:"KeyCount"`
	IsTruncated    bool                    `xml:"IsTruncated"`
	CommonPrefixes []gofakes3.CommonPrefix `xml:"CommonPrefixes,omitempty"`
	Contents       []*gofakes3.Content     `xml:"Contents"`
}

// listings serves the listings EncodeListings asks for from the backend, and hands every other
// request to next.
func (s *Server) listings(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		bucket := strings.Trim(r.URL.Path, "/")
		oneBucket := bucket != "" && !strings.Contains(bucket, "/")
		switch {
		case !s.encodeListings.Load():
			next.ServeHTTP(w, r)
		case r.Method == http.MethodPost && q.Has("uploads"):
			s.recordUpload(next, w, r)
		case r.Method != http.MethodGet || q.Get("encoding-type") != "url" || !oneBucket:
			next.ServeHTTP(w, r)
		case q.Get("list-type") == "2":
			s.serveEncodedListing(w, bucket, q)
		case q.Has("uploads"):
			s.serveEncodedUploads(next, w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// recordUpload creates a multipart upload and remembers its key as it is, by upload id: what
// gofakes3's listing of uploads loses.
func (s *Server) recordUpload(next http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	var created gofakes3.InitiateMultipartUploadResult
	if xml.Unmarshal(rec.Body.Bytes(), &created) == nil && created.UploadID != "" {
		_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		s.uploadKeys.Store(string(created.UploadID), key)
	}
	replay(w, rec)
}

// replay writes what rec recorded to w.
func replay(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// serveEncodedUploads is gofakes3's listing of uploads with each key as recordUpload saw it,
// url-encoded.
func (s *Server) serveEncodedUploads(next http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	out := encodedUploads{EncodingType: "url"}
	if rec.Code != http.StatusOK || xml.Unmarshal(rec.Body.Bytes(), &out.ListMultipartUploadsResult) != nil {
		replay(w, rec)
		return
	}
	out.Prefix = url.QueryEscape(r.URL.Query().Get("prefix"))
	for i, u := range out.Uploads {
		if key, ok := s.uploadKeys.Load(string(u.UploadID)); ok {
			out.Uploads[i].Key = url.QueryEscape(key.(string))
		}
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(out)
}

func (s *Server) serveEncodedListing(w http.ResponseWriter, bucket string, q url.Values) {
	var prefix, delimiter *string
	if q.Has("prefix") {
		prefix = new(string)
		*prefix = q.Get("prefix")
	}
	if q.Has("delimiter") {
		delimiter = new(string)
		*delimiter = q.Get("delimiter")
	}
	p := gofakes3.NewPrefix(prefix, delimiter)
	objects, err := s.Backend.ListBucket(bucket, &p, gofakes3.ListBucketPage{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	out := encodedList{
		Name: bucket, Prefix: url.QueryEscape(p.Prefix), Delimiter: url.QueryEscape(p.Delimiter), EncodingType: "url",
		KeyCount: len(objects.Contents) + len(objects.CommonPrefixes),
	}
	for _, cp := range objects.CommonPrefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, gofakes3.CommonPrefix{Prefix: url.QueryEscape(cp.Prefix)})
	}
	for _, c := range objects.Contents {
		encoded := *c
		encoded.Key = url.QueryEscape(c.Key)
		out.Contents = append(out.Contents, &encoded)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(out)
}
