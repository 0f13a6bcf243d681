package telemetry_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/webnovel/webnovel-backup/internal/telemetry"
)

var remote = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	TraceFlags: trace.FlagsSampled,
})

const remoteHeader = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// nats.Header is case-sensitive: the carrier writes "traceparent" exactly so, where the
// net/http carrier would write "Traceparent".
func TestInjectKeepsHeaderCase(t *testing.T) {
	h := nats.Header{}
	telemetry.Inject(trace.ContextWithSpanContext(context.Background(), remote), h)
	if got := h["traceparent"]; len(got) != 1 || got[0] != remoteHeader {
		t.Fatalf("headers %v: want traceparent: %s", h, remoteHeader)
	}
	if _, ok := h["Traceparent"]; ok {
		t.Fatalf("headers %v hold a canonicalised Traceparent", h)
	}
	if len(h) != 1 {
		t.Fatalf("headers %v: want traceparent only (no trace state was set)", h)
	}
}

func TestInjectWithoutSpanWritesNothing(t *testing.T) {
	h := nats.Header{}
	telemetry.Inject(context.Background(), h)
	if len(h) != 0 {
		t.Fatalf("headers without a span: %v", h)
	}
}

func TestExtract(t *testing.T) {
	tests := []struct {
		name   string
		header nats.Header
		valid  bool
	}{
		{"exact case", nats.Header{"traceparent": {remoteHeader}}, true},
		{"canonicalised by another producer", nats.Header{"Traceparent": {remoteHeader}}, true},
		{"with other headers", nats.Header{"Nats-Msg-Id": {"run/task"}, "traceparent": {remoteHeader}}, true},
		{"none", nil, false},
		{"malformed", nats.Header{"traceparent": {"00-zz-00f067aa0ba902b7-01"}}, false},
		{"empty value list", nats.Header{"traceparent": {}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), tt.header))
			if sc.IsValid() != tt.valid {
				t.Fatalf("extracted %v valid=%v, want valid=%v", sc, sc.IsValid(), tt.valid)
			}
			if tt.valid && (sc.TraceID() != remote.TraceID() || sc.SpanID() != remote.SpanID() || !sc.IsRemote()) {
				t.Fatalf("extracted %v, want remote %v", sc, remote)
			}
		})
	}
}

func TestHeaderCarrierKeys(t *testing.T) {
	c := telemetry.HeaderCarrier(nats.Header{})
	c.Set("traceparent", "a")
	c.Set("tracestate", "b")
	if len(c.Keys()) != 2 || c.Get("traceparent") != "a" || c.Get("TRACESTATE") != "b" || c.Get("missing") != "" {
		t.Fatalf("carrier %v: keys %v", c, c.Keys())
	}
}

// Task headers come from the queue, so from anyone who can publish to it: extracting must
// never fail, and whatever it accepts must survive a round trip.
func FuzzExtract(f *testing.F) {
	f.Add(remoteHeader, "")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "vendor=x")
	f.Add("ff-00000000000000000000000000000000-0000000000000000-01", "a=b,c=d")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, parent, state string) {
		h := nats.Header{"traceparent": {parent}, "tracestate": {state}}
		sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), h))
		if !sc.IsValid() {
			return
		}
		out := nats.Header{}
		telemetry.Inject(trace.ContextWithRemoteSpanContext(context.Background(), sc), out)
		again := trace.SpanContextFromContext(telemetry.Extract(context.Background(), out))
		if !again.Equal(sc) {
			t.Fatalf("round trip of %q: %v became %v", parent, sc, again)
		}
	})
}
