// Package redact hides secrets in locations before they reach any output: logs, errors,
// metadata, reports, traces and queue messages all print locations through URL.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask stands in for a hidden secret.
const Mask = "xxxxx"

// secretParams are query parameters whose values are secrets, lower case: libpq's and pgx's
// password options, NATS tokens, S3 credentials and pre-signed URL signatures.
var secretParams = map[string]bool{
	"password": true, "passwd": true, "pass": true, "pwd": true, "sslpassword": true,
	"token": true, "auth_token": true, "secret": true, "client_secret": true,
	"access_key": true, "secret_key": true, "secret_access_key": true, "aws_secret_access_key": true,
	"session_token": true, "aws_session_token": true, "security_token": true,
	"x-amz-signature": true, "x-amz-credential": true, "x-amz-security-token": true,
	"signature": true, "sig": true, "key": true, "apikey": true, "api_key": true,
}

// unparsable matches what could be credentials in a location url.Parse refuses: anything
// between "://" and the last "@" of the authority, and secret-looking key=value pairs.
var (
	unparsableUser  = regexp.MustCompile(`://[^/?#]*@`)
	unparsableAuth  = regexp.MustCompile(`(^|[/\s])([^:/\s]*):[^/\s]*@`)
	unparsableParam = regexp.MustCompile(`(?i)([a-z0-9_.-]*(?:password|passwd|secret|token|signature|credential)[a-z0-9_.-]*=)[^&;\s]*`)
)

// URL returns location with every secret replaced by Mask: the password of its userinfo and
// the values of query parameters that hold secrets. A comma-separated list (NATS server
// lists) is redacted part by part; something that does not parse as a URL is still masked
// where it looks like credentials. Locations without secrets come back unchanged.
func URL(location string) string {
	if strings.Contains(location, ",") && strings.Contains(location, "://") {
		parts := strings.Split(location, ",")
		for i, p := range parts {
			parts[i] = one(p)
		}
		return strings.Join(parts, ",")
	}
	return one(location)
}

func one(location string) string {
	u, err := url.Parse(location)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		// Not a URL (a libpq key=value string, a path, a typo): mask what looks like secrets.
		s := unparsableUser.ReplaceAllString(location, "://"+Mask+"@")
		s = unparsableAuth.ReplaceAllString(s, "${1}${2}:"+Mask+"@")
		return unparsableParam.ReplaceAllString(s, "${1}"+Mask)
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
		if secretParams[strings.ToLower(name)] {
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
