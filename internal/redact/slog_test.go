package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestHandlerMasksEveryAttribute: a secret quoted in the message, a string, an error (wrapped
// or not), a Stringer, a group or an attribute given to With reaches neither format.
func TestHandlerMasksEveryAttribute(t *testing.T) {
	loc := "s3://b/p?secret_key=" + secret
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&out, nil)
			if format == "json" {
				h = slog.NewJSONHandler(&out, nil)
			}
			log := slog.New(NewHandler(h)).With("dest", loc)
			log.Info("open "+loc, "err", fmt.Errorf("open %s: %w", loc, errors.New("refused")),
				"url", "postgres://u:"+secret+"@db/app", "stringer", stringer(loc),
				slog.Group("g", "inner", loc), "n", 3)
			log.WithGroup("w").Warn("again", "err", errors.New("host=db password="+secret))
			got := out.String()
			if strings.Contains(got, secret) {
				t.Fatalf("the secret reached the log:\n%s", got)
			}
			for _, want := range []string{"s3://b/p?secret_key=xxxxx", "postgres://u:xxxxx@db/app", "password=xxxxx", "refused", "3"} {
				if !strings.Contains(got, want) {
					t.Errorf("the log lacks %q:\n%s", want, got)
				}
			}
		})
	}
}

type stringer string

func (s stringer) String() string { return string(s) }
