package redact

import (
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Some secrets cannot be found by the shape of what is printed around them: a password with a
// space in it ends a location where URL and Text see one end. The command line registers the
// secrets of every location it is given (SecretsOf) whose redaction would miss them, and Text
// masks each wherever it appears, as CI systems mask their secrets.

// minSecret is the shortest secret masked by its value: a shorter one would mask ordinary text.
const minSecret = 4

var known struct {
	sync.RWMutex
	secrets  []string
	replacer *strings.Replacer
}

// ageSecretKey matches an age secret key, which no output may hold whatever quotes it.
var ageSecretKey = regexp.MustCompile(`AGE-SECRET-KEY-1[0-9A-Za-z]+`)

// SecretsOf registers the secrets location holds that URL would leave in place: its userinfo
// password and secret query parameters' values, read from the raw text (between "://" and
// the last "@", and up to the next "&"), so that Text masks them wherever they appear.
func SecretsOf(location string) {
	redacted := structural(location)
	for _, s := range rawSecrets(location) {
		if strings.Contains(redacted, s) {
			registerSecret(s)
		}
	}
}

// rawSecrets are the values in location's text that are secrets, however it parses.
func rawSecrets(location string) []string {
	var out []string
	_, rest, ok := strings.Cut(location, "://")
	if !ok {
		return nil
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if _, password, ok := strings.Cut(rest[:at], ":"); ok {
			out = append(out, password)
			if p, err := url.PathUnescape(password); err == nil {
				out = append(out, p)
			}
		}
	}
	if _, query, ok := strings.Cut(rest, "?"); ok {
		for _, param := range strings.Split(query, "&") {
			name, value, ok := strings.Cut(param, "=")
			if !ok {
				continue
			}
			if v, err := url.QueryUnescape(value); err == nil && strings.Contains(v, "://") {
				out = append(out, rawSecrets(v)...) // a location in a parameter (an S3 endpoint)
			} else if strings.Contains(value, "://") {
				out = append(out, rawSecrets(value)...)
			}
			if !isSecretParam(name) {
				continue
			}
			out = append(out, value)
			if v, err := url.QueryUnescape(value); err == nil {
				out = append(out, v)
			}
		}
	}
	return out
}

// Secret registers s, a value that is a secret whatever surrounds it (an OTLP header's
// value), so that Text and URL mask it wherever it appears; one shorter than 4 bytes is not.
func Secret(s string) { registerSecret(strings.TrimSpace(s)) }

func registerSecret(s string) {
	if len(s) < minSecret {
		return
	}
	known.Lock()
	defer known.Unlock()
	for _, k := range known.secrets {
		if k == s {
			return
		}
	}
	known.secrets = append(known.secrets, s)
	pairs := make([]string, 0, 2*len(known.secrets))
	for _, k := range known.secrets {
		pairs = append(pairs, k, Mask)
	}
	known.replacer = strings.NewReplacer(pairs...)
}

// maskKnown masks the registered secrets and age secret keys in s.
func maskKnown(s string) string {
	known.RLock()
	r := known.replacer
	known.RUnlock()
	if r != nil {
		s = r.Replace(s)
	}
	if !strings.Contains(s, "AGE-SECRET-KEY-") {
		return s // the common case: no regular expression run over every log line
	}
	return ageSecretKey.ReplaceAllString(s, Mask)
}
