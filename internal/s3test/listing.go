package s3test

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// EncodeListings makes the server answer a listing that asks for url-encoded keys
// (ListObjectsV2 with encoding-type=url) as S3 does: every key and prefix percent-encoded, and
// EncodingType url in the answer. gofakes3 ignores the request and writes keys into its XML as
// they are, where a control character, which XML cannot carry, becomes U+FFFD. Such a listing
// is served whole, as one page.
func (s *Server) EncodeListings() { s.encodeListings.Store(true) }

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
		if !s.encodeListings.Load() || r.Method != http.MethodGet || q.Get("list-type") != "2" ||
			q.Get("encoding-type") != "url" || bucket == "" || strings.Contains(bucket, "/") {
			next.ServeHTTP(w, r)
			return
		}
		s.serveEncodedListing(w, bucket, q)
	})
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
