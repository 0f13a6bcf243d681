package telemetry

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier carries trace context in NATS message headers. nats.Header is case-sensitive,
// so keys are kept exactly as the propagator writes them ("traceparent"); the net/http
// carrier would canonicalise them to "Traceparent", which other NATS clients do not look for.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the value of key, exact case first, else the first key equal to it in any case
// (a producer that canonicalised its headers).
func (h HeaderCarrier) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set sets key to value, keeping key's case.
func (h HeaderCarrier) Set(key, value string) { h[key] = []string{value} }

// Keys lists the header names.
func (h HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(h))
	for k := range h {
		out = append(out, k)
	}
	return out
}

// propagator is always W3C trace context: tasks carry it whether or not Setup installed a
// global propagator (tests install a tracer provider only).
var propagator = propagation.TraceContext{}

// Inject writes the trace context of ctx into h; nothing when ctx carries no span (tracing off).
func Inject(ctx context.Context, h nats.Header) {
	propagator.Inject(ctx, HeaderCarrier(h))
}

// Extract returns ctx with the remote span context that h carries, if any.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, HeaderCarrier(h))
}
