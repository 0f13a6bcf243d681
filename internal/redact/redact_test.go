package redact

import (
	"strings"
	"testing"
)

const secret = "S3cr3t-pa55"

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:" + secret + "@db:5432/app", "postgres://u:xxxxx@db:5432/app"},
		{"postgres://db/app?user=u&password=" + secret, "postgres://db/app?user=u&password=xxxxx"},
		{"postgres://db/app?sslmode=verify-full&sslpassword=" + secret, "postgres://db/app?sslmode=verify-full&sslpassword=xxxxx"},
		{"postgres://db/app?PASSWORD=" + secret, "postgres://db/app?PASSWORD=xxxxx"},
		{"nats://" + secret + "@n1:4222", "nats://xxxxx@n1:4222"},
		{"nats://u:" + secret + "@n1:4222,nats://u:" + secret + "@n2:4222", "nats://u:xxxxx@n1:4222,nats://u:xxxxx@n2:4222"},
		{"s3://bucket/prefix?region=eu-west-1&secret_key=" + secret, "s3://bucket/prefix?region=eu-west-1&secret_key=xxxxx"},
		{"https://b.s3/x?X-Amz-Signature=" + secret + "&X-Amz-Expires=60", "https://b.s3/x?X-Amz-Signature=xxxxx&X-Amz-Expires=60"},
		{"postgres://u:" + secret + "@db:5432/a%zz", "postgres://xxxxx@db:5432/a%zz"},
		{"host=db password=" + secret + " dbname=app", "host=db password=xxxxx dbname=app"},
		// a location nested in a parameter (an S3 endpoint) is redacted too, escaped or not
		{"s3://b/p?endpoint=http://u:" + secret + "@127.0.0.1:9&region=x", "s3://b/p?endpoint=http://u:xxxxx@127.0.0.1:9&region=x"},
		{"s3://b/p?endpoint=http%3A%2F%2Fu%3A" + secret + "%40h%3A9&region=x", "s3://b/p?endpoint=http%3A%2F%2Fu%3Axxxxx%40h%3A9&region=x"},
		{"s3://b/p?endpoint=https://h/?token=" + secret, "s3://b/p?endpoint=https://h/?token=xxxxx"},
		// a password holding "/", "#" or "?" (base64) ends the authority where url.Parse
		// sees it: it parses wrong, or not at all, and is masked whole all the same
		{"nats://nu:Nats/" + secret + "@127.0.0.1:1", "nats://xxxxx@127.0.0.1:1"},
		{"nats://nu:12/" + secret + "@127.0.0.1:1", "nats://xxxxx@127.0.0.1:1"},
		{"http://hu:Hook#" + secret + "@127.0.0.1:1/x", "http://xxxxx@127.0.0.1:1/x"},
		{"http://hu:Ho?k" + secret + "@127.0.0.1:1/x", "http://xxxxx@127.0.0.1:1/x"},
		{`connect to nats nats://nu:N/` + secret + `@127.0.0.1:1: dial tcp: refused`, `connect to nats nats://xxxxx@127.0.0.1:1: dial tcp: refused`},
		{"postgres://u:p@ss/" + secret + "@db/app", "postgres://xxxxx@db/app"},
		// secret parameters by any name that says so
		{"http://h/x?code=" + secret + "&access_token=" + secret + "&private_token=" + secret + "&apitoken=" + secret + "&n=1",
			"http://h/x?code=xxxxx&access_token=xxxxx&private_token=xxxxx&apitoken=xxxxx&n=1"},
		{"http://h/x?X-Api-Key=" + secret, "http://h/x?X-Api-Key=xxxxx"},
		{"postgres://db/app?passphrase=" + secret + "&sslmode=require", "postgres://db/app?passphrase=xxxxx&sslmode=require"},
		// nothing to hide: unchanged, byte for byte
		{"s3://b/p?endpoint=http://127.0.0.1:9&path_style=true", "s3://b/p?endpoint=http://127.0.0.1:9&path_style=true"},
		{"sqlite:///db.sqlite3", "sqlite:///db.sqlite3"},
		{"postgres://u@db/app?sslmode=require", "postgres://u@db/app?sslmode=require"},
		{"/srv/media", "/srv/media"},
		{"s3://bucket/media?region=eu-west-1", "s3://bucket/media?region=eu-west-1"},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzURL: whatever the input, a secret given as a password or a password parameter never
// comes back.
func FuzzURL(f *testing.F) {
	for _, s := range []string{"postgres://u:%s@h/d", "postgres://h/d?password=%s", "nats://%s@h", "x://u:%s@h/%%zz", "a=b password=%s", "nats://u:a/%s@h", "x://u:1#%s@h/p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		if strings.Count(pattern, "%s") != 1 || strings.Contains(pattern, "%!") {
			return
		}
		in := strings.Replace(pattern, "%s", secret, 1)
		if strings.Contains(strings.Replace(pattern, "%s", "", 1), secret) {
			return
		}
		got := URL(in)
		leaky := strings.Contains(pattern, ":%s@") || strings.Contains(pattern, "password=%s") || userinfoPassword(pattern)
		if leaky && strings.Contains(got, secret) {
			t.Errorf("URL(%q) = %q keeps the secret", in, got)
		}
		// The same location quoted in an error hides it as well.
		if leaky && !strings.ContainsAny(in, " \t\n\r\v\f\u0085\u00a0<>") {
			if text := Text("open " + in + ": refused"); strings.Contains(text, secret) {
				t.Errorf("Text(%q) = %q keeps the secret", "open "+in+": refused", text)
			}
		}
	})
}

// userinfoPassword tells whether pattern puts the secret inside the password of a URL's
// userinfo: after "://user:" and before the last "@" of the same word.
func userinfoPassword(pattern string) bool {
	i := strings.Index(pattern, "%s")
	before, after := pattern[:i], pattern[i+2:]
	start := strings.LastIndex(before, "://")
	if start < 0 || strings.ContainsAny(before[start:], " \t\n") || !strings.Contains(before[start+3:], ":") {
		return false
	}
	end := strings.IndexAny(after, " \t\n")
	if end < 0 {
		end = len(after)
	}
	return strings.Contains(after[:end], "@")
}

func TestWebhook(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://hooks.slack.com/services/T0/B0/" + secret, "https://hooks.slack.com/…"},
		{"https://u:" + secret + "@h.example:8443/x?token=" + secret, "https://h.example:8443/…"},
		{"http://127.0.0.1:9", "http://127.0.0.1:9"},
		{"http://hu:Hook/" + secret + "@127.0.0.1:1/x", "xxxxx"},
		{"not a url", "xxxxx"},
	} {
		if got := Webhook(tt.in); got != tt.want {
			t.Errorf("Webhook(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A password holding a reserved character makes net/url refuse the location, or take part of
// it for a host or a path; no piece of the password may reach the error.
func TestParseURLQuotesNothing(t *testing.T) {
	for _, tt := range []struct{ url, secret string }{
		{"postgres://wn:Hd8#kq2/Ld@db.internal:5432/webnovel", "Hd8"},
		{"postgres://wn:Hd8?kq2@db.internal:5432/webnovel", "Hd8"},
		{"postgres://wn:123/TailOfPassword@127.0.0.1:5432/webnovel", "TailOfPassword"},
		{"postgres://wn:123?TailOfPassword@127.0.0.1:5432/webnovel", "TailOfPassword"},
		{"postgres://wn:123#TailOfPassword@127.0.0.1:5432/webnovel", "TailOfPassword"},
		{"nats://u:Xy7/Qz9SECRET@127.0.0.1:4222", "Xy7"},
		{"nats://tok/enSECRET@127.0.0.1:4222", "enSECRET"},
		{"http://u:Xy7/QzSECRET@127.0.0.1:9", "Xy7"},
		{"http://u:p%zzSECRET@127.0.0.1:9", "SECRET"},
		{"http://u:p ass SECRET@127.0.0.1:9", "SECRET"},
	} {
		_, err := ParseURL(tt.url)
		if err == nil {
			t.Errorf("%s parsed", URL(tt.url))
			continue
		}
		if strings.Contains(err.Error(), tt.secret) || !strings.Contains(err.Error(), "percent-encoded") {
			t.Errorf("ParseURL: %v (want no %q and the hint)", err, tt.secret)
		}
	}
	for _, ok := range []string{
		"postgres://u:p%2Fw@h/d", "postgres://h/d?user=me@example.com&sslmode=disable",
		"nats://127.0.0.1:4222", "https://hooks.example/services/T/B/x", "s3://bucket/prefix",
	} {
		if _, err := ParseURL(ok); err != nil {
			t.Errorf("ParseURL(%s): %v", ok, err)
		}
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		// a location wrapped in an error: the ":" that follows it stays
		{"backup: destination s3://b/p?endpoint=http://127.0.0.1:1&secret_key=" + secret + ": open storage: refused",
			"backup: destination s3://b/p?endpoint=http://127.0.0.1:1&secret_key=xxxxx: open storage: refused"},
		{"connect postgres://u:" + secret + "@db:5432/app: dial tcp: refused", "connect postgres://u:xxxxx@db:5432/app: dial tcp: refused"},
		{"copy to nats://" + secret + "@n1:4222, then stop", "copy to nats://xxxxx@n1:4222, then stop"},
		{`open "s3://b/p?access_key=` + secret + `"`, `open "s3://b/p?access_key=xxxxx"`},
		// two locations, and a libpq string between them
		{"from postgres://u:" + secret + "@a/x to host=db password=" + secret + " via s3://b/p?key=" + secret,
			"from postgres://u:xxxxx@a/x to host=db password=xxxxx via s3://b/p?key=xxxxx"},
		// nothing to hide: unchanged
		{"backup: destination s3://b/p?region=eu-west-1: open storage: refused", "backup: destination s3://b/p?region=eu-west-1: open storage: refused"},
		{"restore /srv/backups/backup_20240101_000000: 3 files", "restore /srv/backups/backup_20240101_000000: 3 files"},
		{"at 10:30:00 user a@b.example: ok", "at 10:30:00 user a@b.example: ok"},
		// credentials without a scheme are masked all the same
		{"server u:" + secret + "@n1:4222 refused", "server u:xxxxx@n1:4222 refused"},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// TestSecretsOf: a secret that a location's shape hides from URL and Text (a password with a
// space, a parameter value with one) is masked by its value once registered, wherever it is
// quoted; one they mask already is not registered (it would mask ordinary text); an age secret
// key is masked wherever it is.
func TestSecretsOf(t *testing.T) {
	const spaced = "a b" + secret
	if got := Text("open nats://u:" + spaced + "@127.0.0.1:1: refused"); !strings.Contains(got, secret) {
		t.Fatalf("masked before it was registered (%q): the test shows nothing", got)
	}
	for _, loc := range []string{
		"nats://u:" + spaced + "@127.0.0.1:1",
		"s3://b/p?endpoint=http://u:" + spaced + "@127.0.0.1:1&region=x",
		"postgres://db/app?passphrase=" + spaced,
	} {
		SecretsOf(loc)
		for _, got := range []string{Text("open " + loc + ": refused"), URL(loc), Text(`parse "` + loc + `": invalid userinfo`)} {
			if strings.Contains(got, secret) {
				t.Errorf("%s: %q keeps the secret", loc, got)
			}
		}
	}
	SecretsOf("postgres://u:plain@db/app")
	if got := Text("plain text"); got != "plain text" {
		t.Errorf("a password URL masks registered it: %q", got)
	}
	key := "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQSWHF0H"
	if got := Text(`malformed recipient "age1abc ` + key + `": mixed case`); strings.Contains(got, "QQQQ") {
		t.Errorf("an age secret key kept: %q", got)
	}
}
