// Package redact hides secrets in locations before they reach any output: logs, errors,
// metadata, reports, traces and queue messages all print locations through URL.
package redact

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Mask stands in for a hidden secret.
const Mask = "xxxxx"

// secretParams are query parameters whose values are secrets whatever else they are called,
// lower case: S3 credentials, pre-signed URL signatures, keys and OAuth codes. Any parameter
// whose name holds one of secretWords is a secret too (access_token, private_token, apitoken,
// sslpassword, x-amz-credential, client_secret, …): a list of exact names misses the next one.
var secretParams = map[string]bool{
	"pass": true, "pwd": true, "access_key": true, "secret_key": true, "sig": true, "key": true,
	"code": true, "sas": true, "jwt": true, "bearer": true,
}

// secretWords are the parts of a parameter's name that make its value a secret.
var secretWords = []string{"password", "passwd", "passphrase", "secret", "token", "signature", "credential", "apikey", "api_key", "api-key", "auth", "session"}

// isSecretParam tells whether a query parameter of that name holds a secret.
func isSecretParam(name string) bool {
	name = strings.ToLower(name)
	if secretParams[name] {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// unparsable matches what could be credentials in a location url.Parse refuses, or parses
// into something else than the writer meant (a password holding "/", "?" or "#" ends the
// authority early): anything between "://" and the last "@" before a space, and
// secret-looking key=value pairs. Masking too much is the safe side.
var (
	unparsableUser  = regexp.MustCompile(`://\S*@`)
	unparsableAuth  = regexp.MustCompile(`(^|[/\s])([^:/\s]*):(?:[^/\s]\S*)?@`)
	unparsableParam = regexp.MustCompile(`(?i)([a-z0-9_.-]*(?:password|passwd|passphrase|secret|token|signature|credential|apikey|api_key|api-key|auth|session)[a-z0-9_.-]*=)[^&;\s]*`)
)

// URL returns location with every secret replaced by Mask: the password of its userinfo and
// the values of query parameters that hold secrets. A comma-separated list (NATS server
// lists) is redacted part by part; something that does not parse as a URL is still masked
// where it looks like credentials. Locations without secrets come back unchanged.
func URL(location string) string { return maskKnown(structural(location)) }

// structural is URL by the location's shape alone.
func structural(location string) string {
	if parts := strings.Split(location, ","); len(parts) > 1 && allLocations(parts) {
		for i, p := range parts {
			parts[i] = one(p)
		}
		return strings.Join(parts, ",")
	}
	return one(location)
}

// allLocations tells whether every part of a comma-separated list is a location of its own
// (a NATS server list); a comma inside one location's password is not a list.
func allLocations(parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(p, "://") {
			return false
		}
	}
	return true
}

func one(location string) string {
	u, err := url.Parse(location)
	if err != nil || u.Scheme == "" || u.Opaque != "" || strings.Contains(u.Host+u.Path+u.Fragment, "@") || unparsableParam.MatchString(u.Host) {
		// Not a URL (a libpq key=value string, a path, a typo), or an "@" past where the
		// parser ended the authority (nats://user:12/ab@host): mask what looks like secrets.
		return between(location)
	}
	changed := false
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Mask)
			changed = true
		} else if u.Scheme == "nats" || u.Scheme == "tls" || u.Scheme == "ws" || u.Scheme == "wss" {
			// nats://TOKEN@host: a lone user name is the token.
			u.User = url.User(Mask)
			changed = true
		}
	}
	if u.RawQuery != "" {
		if q, ok := redactQuery(u.RawQuery); ok {
			u.RawQuery = q
			changed = true
		}
	}
	// key=value secrets outside the query (no real path or fragment holds "password=").
	if f := unparsableParam.ReplaceAllString(u.Fragment, "${1}"+Mask); f != u.Fragment {
		u.Fragment, u.RawFragment = f, ""
		changed = true
	}
	if p := unparsableParam.ReplaceAllString(u.Path, "${1}"+Mask); p != u.Path {
		u.Path, u.RawPath = p, ""
		changed = true
	}
	if !changed {
		return location
	}
	return u.String()
}

// Webhook returns location as it may be shown: its scheme and host only, "…" for the rest.
// A chat webhook's secret is its path (Slack's /services/T…/B…/secret), which no pattern
// tells from an ordinary path.
func Webhook(location string) string {
	u, err := url.Parse(location)
	if err != nil || u.Scheme == "" || u.Host == "" || (u.User == nil && strings.Contains(u.Host, "@")) {
		return Mask
	}
	host := u.Host
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	if u.Path == "" && u.RawQuery == "" {
		return u.Scheme + "://" + host
	}
	return u.Scheme + "://" + host + "/…"
}

// redactQuery masks the secret parameters of a raw query, keeping the others as written.
func redactQuery(raw string) (string, bool) {
	parts := strings.Split(raw, "&")
	changed := false
	for i, p := range parts {
		name, _, hasValue := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if !hasValue {
			continue
		}
		if isSecretParam(name) {
			parts[i] = url.QueryEscape(name) + "=" + Mask
			changed = true
		} else if v, ok := nestedLocation(p); ok {
			parts[i] = v
			changed = true
		}
	}
	return strings.Join(parts, "&"), changed
}

// nestedLocation redacts a parameter whose value is itself a location (an S3 endpoint, a
// proxy): its userinfo and secret parameters are hidden the same way. ok is false when the
// value holds nothing to hide.
func nestedLocation(param string) (string, bool) {
	rawName, rawValue, _ := strings.Cut(param, "=")
	value, err := url.QueryUnescape(rawValue)
	if err != nil {
		value = rawValue
	}
	if !strings.Contains(value, "://") && !strings.Contains(value, "@") {
		return param, false
	}
	r := URL(value)
	if r == value {
		return param, false
	}
	if value == rawValue {
		// Written unescaped: keep it readable; masking adds no character that needs escaping.
		return rawName + "=" + r, true
	}
	return rawName + "=" + url.QueryEscape(r), true
}

// encodeHint says what usually makes a location with credentials fail to parse.
const encodeHint = "a user name or password holding / ? # @ : %, or a space, must be percent-encoded"

// quoted matches a Go-quoted string in an error's text.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// ParseError returns err, unless it is (or wraps) net/url's refusal to parse a location: that
// names the piece it refused, quoted ("invalid port \":Hd8\" after host"), and when a password
// holds a reserved character the piece is part of the password. The error returned then says
// why without quoting anything.
func ParseError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) || ue.Op != "parse" {
		return err
	}
	return fmt.Errorf("not a valid URL (%s): %s", quoted.ReplaceAllString(ue.Err.Error(), "…"), encodeHint)
}

// ParseURL parses a location that may hold credentials as url.Parse does, but no error quotes
// a part of it (see ParseError). A location with no user name and an "@" in its path,
// fragment, or query before any "=" is refused the same way: a password holding "/", "?" or
// "#" ended the authority early (postgres://u:12/tail@host/db parses as host "u", port 12),
// and its tail would be taken for a path, or its head for a host to look up.
func ParseURL(location string) (*url.URL, error) {
	u, err := url.Parse(location)
	if err != nil {
		return nil, ParseError(err)
	}
	query, _, _ := strings.Cut(u.RawQuery, "=")
	if u.User == nil && strings.Contains(u.Path+u.Fragment+query, "@") {
		return nil, fmt.Errorf("not a valid URL (an \"@\" after the host): %s", encodeHint)
	}
	return u, nil
}

// location matches a location written inside a longer text: a scheme, "://" and everything
// up to a space.
var location = regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9+.-]*://[^\s<>]+`)

// Text returns s with every secret of every location in it masked, as URL masks one, and what
// looks like credentials between them (user:password@host, a libpq connection string's
// password=…): for whole messages (an error, a log line) that may quote a location given
// anywhere, as the last guard before an output. The punctuation that ends a phrase (":"
// before a wrapped error, a closing quote) stays outside the location. The secrets
// registered by SecretsOf, and age secret keys, are masked wherever they are.
func Text(s string) string {
	s = maskKnown(s)
	var b strings.Builder
	last := 0
	for _, m := range location.FindAllStringIndex(s, -1) {
		b.WriteString(between(s[last:m[0]]))
		loc := s[m[0]:m[1]]
		end := len(strings.TrimRight(loc, ":,;.)]}\"'"))
		b.WriteString(URL(loc[:end]) + loc[end:])
		last = m[1]
	}
	b.WriteString(between(s[last:]))
	return b.String()
}

// between masks what looks like credentials in text that is not a location url.Parse reads.
func between(s string) string {
	s = unparsableUser.ReplaceAllString(s, "://"+Mask+"@")
	s = unparsableAuth.ReplaceAllString(s, "${1}${2}:"+Mask+"@")
	return unparsableParam.ReplaceAllString(s, "${1}"+Mask)
}
