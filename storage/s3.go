package storage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"

	"github.com/webnovel/webnovel-backup/internal/redact"
)

// Defaults of the S3 driver; each can be changed per bucket by a query parameter of the URL.
const (
	defaultPartSize      = 8 << 20
	defaultConcurrency   = 4
	defaultParallelAbove = 64 << 20
	defaultTimeout       = 2 * time.Minute
	maxAttempts          = 10
	maxParts             = 10000
)

// Limits of S3 server-side copies. Variables so that tests can exercise the multipart path
// on small objects.
var (
	// copyObjectMax is the largest object a single CopyObject may copy (5 GB on S3).
	copyObjectMax int64 = 5 << 30
	// copyPartSize is the size of each UploadPartCopy range above copyObjectMax.
	copyPartSize int64 = 512 << 20
)

// s3Driver keeps objects under a prefix of an S3 bucket. Mode and ModTime travel as user
// metadata (x-amz-meta-mode, octal; x-amz-meta-mtime, Unix nanoseconds) because S3 has no
// place for them; objects written by other tools (Django's storages) have neither, and then
// Mode is 0 and ModTime is S3's LastModified.
type s3Driver struct {
	client *s3.Client
	bucket string
	root   string // "" or "prefix/"
	// endpoint identifies the service; server-side copies need both buckets on the same one.
	endpoint    string
	region      string
	pathStyle   bool
	partSize    int64
	concurrency int
	parallelMin int64
	timeout     time.Duration
	checksum    bool
}

// s3Params are the query parameters an s3:// URL may carry.
var s3Params = []string{"region", "endpoint", "path_style", "part_size", "concurrency", "parallel_above", "timeout", "checksum"}

// openS3 opens "s3://bucket/prefix?region=…&endpoint=…&path_style=true". Credentials come
// from the standard AWS chain (environment, shared files, SSO, IMDS...), never from the URL.
//
// Query parameters:
//   - region: the bucket's region (default: AWS_REGION / the shared config, else us-east-1)
//   - endpoint: an S3-compatible service's URL (default: AWS, or AWS_ENDPOINT_URL_S3)
//   - path_style: true for http://host/bucket/key addressing (most S3-compatible servers)
//   - part_size: bytes per multipart part and per ranged read (default 8 MiB; S3 wants ≥ 5 MiB)
//   - concurrency: parts in flight per upload or download (default 4); memory per open
//     stream is at most concurrency × part_size
//   - parallel_above: objects larger than this many bytes are read by parallel ranged
//     requests (default 64 MiB)
//   - timeout: how long a request may wait on the network while moving fewer than
//     transferFloor bytes (default 2m), after which it is retried, at most three times in a row
//   - checksum: sha256 (default) asks S3 to verify and keep SHA-256 checksums; none leaves
//     checksums to the SDK's "when required" mode, for services that refuse them
func openS3(ctx context.Context, rawURL string) (*s3Driver, error) {
	d, err := parseS3URL(rawURL)
	if err != nil {
		return nil, err
	}
	return d, d.connect(ctx)
}

// parseS3URL reads an s3:// URL into a driver not yet connected.
func parseS3URL(rawURL string) (*s3Driver, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		return nil, errors.New("credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the shared AWS config")
	}
	if u.Host == "" {
		return nil, errors.New("no bucket name (want s3://bucket/prefix)")
	}
	d := &s3Driver{
		bucket:      u.Host,
		partSize:    defaultPartSize,
		concurrency: defaultConcurrency,
		parallelMin: defaultParallelAbove,
		timeout:     defaultTimeout,
		checksum:    true,
	}
	if root := strings.Trim(u.Path, "/"); root != "" {
		if err := CheckKey(root); err != nil {
			return nil, fmt.Errorf("bad prefix: %w", err)
		}
		d.root = root + "/"
	}
	q := u.Query()
	var unknown []string
	for k := range q {
		if !slices.Contains(s3Params, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("unknown parameter(s) %s (known: %s)", strings.Join(unknown, ", "), strings.Join(s3Params, ", "))
	}
	if v := q.Get("path_style"); v != "" {
		if d.pathStyle, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("path_style=%q: want true or false", v)
		}
	}
	sizes := []struct {
		name string
		dst  *int64
		min  int64
	}{{"part_size", &d.partSize, 1 << 10}, {"parallel_above", &d.parallelMin, 0}}
	for _, s := range sizes {
		if v := q.Get(s.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < s.min || n > 5<<30 {
				return nil, fmt.Errorf("%s=%q: want a number of bytes from %d to 5 GiB", s.name, v, s.min)
			}
			*s.dst = n
		}
	}
	if v := q.Get("concurrency"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("concurrency=%q: want 1 to 64", v)
		}
		d.concurrency = n
	}
	if v := q.Get("timeout"); v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 {
			return nil, fmt.Errorf("timeout=%q: want a duration like 30s", v)
		}
		d.timeout = t
	}
	switch v := q.Get("checksum"); v {
	case "", "sha256":
	case "none":
		d.checksum = false
	default:
		return nil, fmt.Errorf("checksum=%q: want sha256 or none", v)
	}
	if v := q.Get("endpoint"); v != "" {
		if err := checkEndpoint(v); err != nil {
			return nil, fmt.Errorf("endpoint: %w", err)
		}
		d.endpoint = strings.TrimSuffix(v, "/")
	}
	d.region = q.Get("region")
	return d, nil
}

// clientKey is what makes two drivers' S3 clients differ: their own settings and the AWS_*
// environment (credentials, region, profile, CA bundle) that the SDK reads.
type clientKey struct {
	endpoint, region string
	pathStyle        bool
	checksum         bool
	timeout          time.Duration
	concurrency      int
	awsEnv           string
}

// sharedClients holds one S3 client per clientKey for the whole process. A backup opens the
// same buckets once per task; a client of its own each time would parse AWS_CA_BUNDLE again
// (megabytes of certificates) and keep its own idle connections alive, so the memory of a
// run grew with its number of tasks, and every task paid new TCP and TLS handshakes.
var sharedClients struct {
	mu sync.Mutex
	m  map[clientKey]*sharedClient
}

// sharedClient is one cached client and the endpoint the configuration resolved.
type sharedClient struct {
	client   *s3.Client
	region   string
	endpoint string
}

// awsEnvironment is the AWS_* variables, sorted, as one string.
func awsEnvironment() string {
	var vars []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") {
			vars = append(vars, kv)
		}
	}
	slices.Sort(vars)
	return strings.Join(vars, "\x00")
}

// connect gives the driver the process's S3 client for its settings, making it on first use.
func (d *s3Driver) connect(ctx context.Context) error {
	key := clientKey{endpoint: d.endpoint, region: d.region, pathStyle: d.pathStyle, checksum: d.checksum,
		timeout: d.timeout, concurrency: d.concurrency, awsEnv: awsEnvironment()}
	sharedClients.mu.Lock()
	defer sharedClients.mu.Unlock()
	if c, ok := sharedClients.m[key]; ok {
		d.client, d.region, d.endpoint = c.client, c.region, c.endpoint
		return nil
	}
	if err := d.newClient(ctx); err != nil {
		return err
	}
	if sharedClients.m == nil {
		sharedClients.m = map[clientKey]*sharedClient{}
	}
	sharedClients.m[key] = &sharedClient{client: d.client, region: d.region, endpoint: d.endpoint}
	return nil
}

// newClient makes the S3 client: the standard credential chain, AWS_CA_BUNDLE, retries and
// timeouts.
func (d *s3Driver) newClient(ctx context.Context) error {
	if d.endpoint == "" {
		for _, name := range endpointVars {
			if v := os.Getenv(name); v != "" {
				if err := checkEndpoint(v); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
		}
	}

	// A BuildableClient lets config.LoadDefaultConfig add AWS_CA_BUNDLE's certificates.
	// The transfer guard (guardedClient) gives up a request that moves fewer than
	// transferFloor bytes in d.timeout of waiting on the network: silent, trickling, or not
	// reading an upload. The connection's rolling read deadline and the header timeout are
	// its backstop (half as long again), for what it does not watch: the body of an answer
	// to a request other than a GET, which S3 may rightly trickle.
	backstop := d.timeout + d.timeout/2
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(dl *net.Dialer) { dl.Timeout = 10 * time.Second }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = backstop
			tr.MaxIdleConnsPerHost = 4 * d.concurrency
		}).
		WithReadTimeout(backstop)
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			// No client-side retry quota: a backup run would rather wait out a bad minute
			// than fail; back-off still spaces the attempts.
			return loggedRetryer{RetryerV2: retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = 20 * time.Second
				o.RateLimiter = ratelimit.None
				// A certificate nobody vouches for will not be vouched for on the next try.
				o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(certError)}, o.Retryables...)
			}), where: d.describe()}
		}),
	}
	opts = append(opts, config.WithLogger(logging.LoggerFunc(sdkLog)))
	if d.region != "" {
		opts = append(opts, config.WithRegion(d.region))
	}
	if !d.checksum {
		opts = append(opts,
			config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("load AWS configuration: %s", redact.URL(err.Error())) // it may quote a location
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	d.region = cfg.Region
	cfg.HTTPClient = guardedClient{next: cfg.HTTPClient, window: d.timeout}
	d.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, countTimeouts)
		o.UsePathStyle = d.pathStyle
		if d.endpoint != "" {
			o.BaseEndpoint = aws.String(d.endpoint)
		}
	})
	if d.endpoint == "" && cfg.BaseEndpoint != nil {
		d.endpoint = *cfg.BaseEndpoint
	}
	return nil
}

// certError stops retries of requests that failed on the server's certificate.
func certError(err error) aws.Ternary {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// loggedRetryer warns at each retry of a request: a service that stops answering takes up to
// maxAttempts timeouts and back-offs, minutes in which the run would otherwise say nothing.
type loggedRetryer struct {
	aws.RetryerV2
	where string
}

// RetryDelay is the retryer's, said as a warning naming the storage, the attempt and the error.
func (r loggedRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.RetryerV2.RetryDelay(attempt, err)
	if derr == nil {
		slog.Warn("S3 request failed; retrying", "storage", r.where, "attempt", attempt, "of", maxAttempts, "after", d.Round(time.Millisecond), "err", err)
	}
	return d, derr
}

// GetRetryToken ends an operation whose last maxStalledAttempts attempts each timed out or
// stalled (counted by countTimeouts), before the retryer's own decision.
func (r loggedRetryer) GetRetryToken(ctx context.Context, err error) (func(error) error, error) {
	if c, ok := ctx.Value(timeoutsKey{}).(*atomic.Int32); ok {
		if !isTimeout(err) {
			c.Store(0)
		} else if n := c.Add(1); n >= maxStalledAttempts {
			return nil, fmt.Errorf("%s: giving up after %d attempts in a row without an answer", r.where, n)
		}
	}
	return r.RetryerV2.GetRetryToken(ctx, err)
}

// timeoutsKey holds, in an operation's context, how many of its attempts in a row timed out.
type timeoutsKey struct{}

// countTimeouts gives each operation a counter of its attempts that timed out in a row.
func countTimeouts(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("wnbCountTimeouts",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			return next.HandleInitialize(context.WithValue(ctx, timeoutsKey{}, new(atomic.Int32)), in)
		}), middleware.Before)
}

// sdkLog sends the SDK's messages to slog: warnings as warnings, the rest (such as "response
// has no supported checksum" from S3-compatible servers) at debug level.
func sdkLog(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	slog.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
}

func (d *s3Driver) describe() string {
	s := "s3://" + d.bucket + "/" + strings.TrimSuffix(d.root, "/")
	if d.endpoint != "" {
		s += " at " + redact.URL(d.endpoint)
	}
	return s
}

// endpointVars are the environment variables the AWS SDK takes an S3 endpoint from.
var endpointVars = []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}

// checkEndpoint refuses an endpoint that is not an http:// or https:// URL, or that holds
// credentials, without quoting it: the SDK's own refusal prints it whole.
func checkEndpoint(v string) error {
	u, err := redact.ParseURL(v)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("%s: want an http:// or https:// URL", redact.URL(v))
	case u.User != nil:
		return errors.New("credentials do not belong in the URL")
	case u.RawQuery != "" || u.Fragment != "":
		// An S3 endpoint has none; a token there would travel in every task and run record.
		return errors.New("an endpoint takes no query (?…) or fragment (#…)")
	}
	return nil
}

func (d *s3Driver) backend() string { return "S3Boto3Storage" }
func (d *s3Driver) close() error    { return nil }

// abortTimeout bounds the clean-up of a failed upload, which runs even when the caller's
// context is done, and must outlast a few retries.
func (d *s3Driver) abortTimeout() time.Duration { return max(2*time.Minute, 3*d.timeout) }

func (d *s3Driver) full(key string) string { return d.root + key }

// walk lists objects in S3's order (lexical by UTF-8 bytes of the key). ListObjectsV2 returns
// no user metadata, so Walk's ModTime is S3's LastModified and Mode is 0; Stat and Open read
// the kept values.
func (d *s3Driver) walk(ctx context.Context, prefix string, fn func(Object) error) error {
	return d.walkSpecial(ctx, prefix, fn, func(sp Special) error {
		slog.WarnContext(ctx, sp.Warning(), "bucket", d.bucket)
		return nil
	})
}

// maxEmptyPages is how many listing pages in a row may hold no key while saying more follow.
// S3 itself sends some (a versioned bucket's runs of delete markers); a service that never
// stops sending them would keep a listing going for ever.
const maxEmptyPages = 1000

// listingGuard ends a listing whose service keeps answering empty pages that say more follow.
type listingGuard struct{ empty int }

func (g *listingGuard) check(keys int, truncated bool) error {
	if keys > 0 || !truncated {
		g.empty = 0
		return nil
	}
	if g.empty++; g.empty >= maxEmptyPages {
		return fmt.Errorf("list: the service answered %d pages in a row with no key, each saying more follow; stopped (a bucket with that many delete markers in a row wants them expired)", g.empty)
	}
	return nil
}

// listedKey is a key as a listing gives it: percent-encoded (as a query is: "+" for a space)
// when the service says it encoded its keys, as asked; as it is from a service that ignores
// the request and says nothing.
func listedKey(encoding types.EncodingType, key string) (string, error) {
	if encoding != types.EncodingTypeUrl {
		return key, nil
	}
	k, err := url.QueryUnescape(key)
	if err != nil {
		return "", fmt.Errorf("list: a key the service encoded is not percent-encoding (%q): %w", key, err)
	}
	return k, nil
}

// walkSpecial is walk that calls special for each key it skips because no file can stand for
// it: a key with an empty, "." or ".." segment, and a folder marker (a key ending in "/") that
// holds bytes. An empty folder marker, which some tools create, is a folder, as a local one
// is, and is passed over in silence.
func (d *s3Driver) walkSpecial(ctx context.Context, prefix string, fn func(Object) error, special func(Special) error) error {
	p := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(d.bucket),
		Prefix: aws.String(d.full(prefix)),
		// XML cannot carry a control character in a key: asked for, S3 percent-encodes keys.
		EncodingType: types.EncodingTypeUrl,
	})
	var guard listingGuard
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		if err := guard.check(len(page.Contents), aws.ToBool(page.IsTruncated)); err != nil {
			return err
		}
		for _, o := range page.Contents {
			full, err := listedKey(page.EncodingType, aws.ToString(o.Key))
			if err != nil {
				return err
			}
			key := strings.TrimPrefix(full, d.root)
			var sp *Special
			switch size := aws.ToInt64(o.Size); {
			case strings.HasSuffix(key, "/") && size == 0:
				continue
			case strings.HasSuffix(key, "/"):
				sp = &Special{Key: full, Kind: "folder marker", Why: fmt.Sprintf("%d bytes under a folder's name (an S3 key ending in /), which no file can hold", size)}
			case CheckKey(key) != nil:
				// Such keys cannot be opened through a Bucket; say so rather than fail the run.
				sp = &Special{Key: full, Kind: "unaddressable key", Why: `an S3 key with an empty, "." or ".." segment, which this tool cannot address`}
			}
			if sp != nil {
				if err := special(*sp); err != nil {
					return err
				}
				continue
			}
			obj := Object{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified), LastModified: aws.ToTime(o.LastModified), ETag: etag(o.ETag)}
			if err := fn(obj); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *s3Driver) stat(ctx context.Context, key string) (Object, error) {
	o, _, err := d.statClock(ctx, key)
	return o, err
}

// etag is an S3 entity tag without its quotes.
func etag(s *string) string { return strings.Trim(aws.ToString(s), `"`) }

func (d *s3Driver) remove(ctx context.Context, key string) error {
	_, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(d.full(key))})
	return s3Err(err)
}

// removeAll deletes the object named prefix and everything under prefix as a folder, as the
// local driver does: "content/1" removes content/1 and content/1/..., not content/10.
func (d *s3Driver) removeAll(ctx context.Context, prefix string) error {
	dir := strings.TrimSuffix(prefix, "/")
	var batch []types.ObjectIdentifier
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		out, err := d.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(d.bucket),
			Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		})
		batch = batch[:0]
		if err != nil {
			return err
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete %s: %s: %s (and %d more)", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
		return nil
	}
	p := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{
		Bucket:       aws.String(d.bucket),
		Prefix:       aws.String(d.full(dir)),
		EncodingType: types.EncodingTypeUrl,
	})
	var guard listingGuard
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		if err := guard.check(len(page.Contents), aws.ToBool(page.IsTruncated)); err != nil {
			return err
		}
		for _, o := range page.Contents {
			full, err := listedKey(page.EncodingType, aws.ToString(o.Key))
			if err != nil {
				return err
			}
			key := strings.TrimPrefix(full, d.root)
			if key != dir && !strings.HasPrefix(key, dir+"/") {
				continue
			}
			if !xmlCarries(full) {
				if _, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(full)}); err != nil {
					return fmt.Errorf("delete %q: %w", full, s3Err(err))
				}
				continue
			}
			batch = append(batch, types.ObjectIdentifier{Key: aws.String(full)})
			if len(batch) == 1000 { // DeleteObjects' limit
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// xmlCarries reports whether an XML body carries key exactly. DeleteObjects names its keys in
// XML, where the SDK writes U+FFFD for what XML 1.0 cannot hold (a control character other
// than tab, newline and carriage return; bytes that are not UTF-8): the service would delete
// that other key, or nothing, and say it succeeded. Such a key is deleted on its own, named in
// the request's path.
func xmlCarries(key string) bool {
	if !utf8.ValidString(key) {
		return false
	}
	for _, r := range key {
		switch {
		case r == '\t', r == '\n', r == '\r':
		case r < 0x20, r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			return false
		}
	}
	return true
}

// metadata returns the user metadata that keeps attrs.Mode and attrs.ModTime.
func metadata(attrs Object) map[string]string {
	m := map[string]string{}
	if attrs.Mode.Perm() != 0 {
		m["mode"] = strconv.FormatUint(uint64(attrs.Mode.Perm()), 8)
	}
	if !attrs.ModTime.IsZero() {
		m["mtime"] = strconv.FormatInt(attrs.ModTime.UnixNano(), 10)
	}
	return m
}

// objectFrom reads Mode and ModTime back from user metadata, falling back to LastModified.
func objectFrom(key string, size int64, lastModified time.Time, meta map[string]string) Object {
	o := Object{Key: key, Size: size, ModTime: lastModified, LastModified: lastModified}
	for k, v := range meta {
		switch strings.ToLower(k) {
		case "mode":
			if m, err := strconv.ParseUint(v, 8, 32); err == nil {
				o.Mode = fs.FileMode(m).Perm()
			}
		case "mtime":
			if ns, err := strconv.ParseInt(v, 10, 64); err == nil {
				o.ModTime = time.Unix(0, ns)
			}
		}
	}
	return o
}

// s3Err maps S3's "no such key" answers to ErrNotExist.
func s3Err(err error) error {
	if err == nil {
		return nil
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return ErrNotExist
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound") {
		return ErrNotExist
	}
	return err
}

// httpStatus is the HTTP status of a failed request (0 when there was no response).
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// copySource is the x-amz-copy-source value for a key: URL-encoded, with "/" kept and "+"
// spelled %2B (some servers decode the value as a query string).
func copySource(bucket, key string) string {
	segs := strings.Split(bucket+"/"+key, "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
	}
	return strings.Join(segs, "/")
}

// copyFrom copies server-side when src is an S3 bucket on the same service: CopyObject up to
// copyObjectMax, else a multipart upload of UploadPartCopy ranges. Mode and ModTime metadata
// go along. A service that does not implement part copies yields ErrNoServerSideCopy, so
// the caller streams instead.
func (d *s3Driver) copyFrom(ctx context.Context, srcDrv driver, srcKey, dstKey string) (Object, error) {
	src, ok := srcDrv.(*s3Driver)
	if !ok || src.endpoint != d.endpoint {
		return Object{}, ErrNoServerSideCopy
	}
	head, err := src.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(src.bucket), Key: aws.String(src.full(srcKey))})
	if err != nil {
		return Object{}, s3Err(err)
	}
	c := serverCopy{d: d, dstKey: dstKey, source: copySource(src.bucket, src.full(srcKey)), head: head, size: aws.ToInt64(head.ContentLength)}
	if d.checksum {
		c.alg = types.ChecksumAlgorithmSha256
	}
	if c.size <= copyObjectMax {
		err = c.whole(ctx)
	} else {
		err = c.multipart(ctx)
	}
	if err != nil {
		return Object{}, err
	}
	return objectFrom(dstKey, c.size, aws.ToTime(head.LastModified), head.Metadata), nil
}

// serverCopy is one server-side copy of an object into d.
type serverCopy struct {
	d      *s3Driver
	dstKey string
	source string // bucket/key, escaped
	head   *s3.HeadObjectOutput
	size   int64
	alg    types.ChecksumAlgorithm
}

// whole copies the object with one CopyObject.
func (c *serverCopy) whole(ctx context.Context) error {
	_, err := c.d.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(c.d.bucket),
		Key:               aws.String(c.d.full(c.dstKey)),
		CopySource:        aws.String(c.source),
		CopySourceIfMatch: c.head.ETag,
		MetadataDirective: types.MetadataDirectiveCopy,
		ChecksumAlgorithm: c.alg,
	})
	if err != nil {
		if st := httpStatus(err); st == http.StatusNotImplemented {
			return fmt.Errorf("%w: %v", ErrNoServerSideCopy, err)
		}
		return s3Err(err)
	}
	return nil
}

// multipart copies the object in ranges of copyPartSize, in parallel, and completes the
// upload; any failure aborts it.
func (c *serverCopy) multipart(ctx context.Context) error {
	d, key := c.d, c.d.full(c.dstKey)
	up, err := d.createUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(d.bucket), Key: aws.String(key), Metadata: c.head.Metadata,
		ContentType: c.head.ContentType, ChecksumAlgorithm: c.alg,
	})
	if err != nil {
		return err
	}
	abort := func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.abortTimeout())
		defer cancel()
		defer d.uploadDone(key, up.UploadId)
		if _, err := d.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(d.bucket), Key: aws.String(key), UploadId: up.UploadId,
		}); err != nil {
			slog.WarnContext(ctx, "abort S3 multipart copy", "bucket", d.bucket, "key", key, "err", err)
		}
	}
	parts, err := c.copyParts(ctx, up.UploadId)
	if err != nil {
		abort()
		switch httpStatus(err) {
		case http.StatusBadRequest, http.StatusLengthRequired, http.StatusNotImplemented:
			// The service does not do part copies (gofakes3, some S3-compatible servers).
			return fmt.Errorf("%w: %v", ErrNoServerSideCopy, err)
		}
		return s3Err(err)
	}
	_, err = d.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(d.bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil && noSuchUpload(err) && d.completedAnyway(ctx, c.dstKey, c.size, parts, "") {
		err = nil // an earlier try completed it; only its answer was lost
	}
	if err != nil {
		abort()
		return err
	}
	d.uploadDone(key, up.UploadId)
	return nil
}

// copyParts runs the UploadPartCopy requests, d.concurrency at a time, and stops at the first
// failure.
func (c *serverCopy) copyParts(ctx context.Context, uploadID *string) ([]types.CompletedPart, error) {
	n := int((c.size + copyPartSize - 1) / copyPartSize)
	parts := make([]types.CompletedPart, n)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, c.d.concurrency)
	)
	for i := range n {
		sem <- struct{}{}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			p, err := c.copyPart(cctx, uploadID, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("copy part %d: %w", i+1, err)
					cancel()
				}
				return
			}
			parts[i] = p
		})
	}
	wg.Wait()
	return parts, firstErr
}

// copyPart copies the i-th range (0-based).
func (c *serverCopy) copyPart(ctx context.Context, uploadID *string, i int) (types.CompletedPart, error) {
	off := int64(i) * copyPartSize
	end := min(off+copyPartSize, c.size) - 1
	out, err := c.d.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
		Bucket:            aws.String(c.d.bucket),
		Key:               aws.String(c.d.full(c.dstKey)),
		UploadId:          uploadID,
		PartNumber:        aws.Int32(int32(i + 1)),
		CopySource:        aws.String(c.source),
		CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		CopySourceIfMatch: c.head.ETag,
	})
	if err != nil {
		return types.CompletedPart{}, err
	}
	p := types.CompletedPart{PartNumber: aws.Int32(int32(i + 1))}
	if r := out.CopyPartResult; r != nil {
		p.ETag, p.ChecksumSHA256 = r.ETag, r.ChecksumSHA256
	}
	return p, nil
}

// sha256 returns the service's full-object SHA-256 of key, or "" when it has none (the
// object was uploaded without one, in parts — S3 keeps a checksum of part checksums then —
// or the service keeps no checksums).
func (d *s3Driver) sha256(ctx context.Context, key string) (string, error) {
	if !d.checksum {
		return "", nil
	}
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(d.bucket),
		Key:          aws.String(d.full(key)),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return "", s3Err(err)
	}
	v := aws.ToString(out.ChecksumSHA256)
	if v == "" || out.ChecksumType == types.ChecksumTypeComposite || strings.Contains(v, "-") {
		return "", nil
	}
	sum, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(sum) != 32 {
		return "", nil
	}
	return hex.EncodeToString(sum), nil
}
