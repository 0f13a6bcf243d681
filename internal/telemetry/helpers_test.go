package telemetry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// span is what the tests look at of a finished span, from either process.
type span struct {
	Name   string            `json:"name"`
	Trace  string            `json:"trace_id"`
	ID     string            `json:"span_id"`
	Parent string            `json:"parent_span_id,omitempty"`
	Kind   string            `json:"kind"`
	Attrs  map[string]string `json:"attrs"`
	Error  bool              `json:"error,omitempty"`
}

func toSpan(name string, sc, parent trace.SpanContext, kind trace.SpanKind, attrs map[string]string, isErr bool) span {
	s := span{Name: name, Trace: sc.TraceID().String(), ID: sc.SpanID().String(), Kind: kind.String(), Attrs: attrs, Error: isErr}
	if parent.IsValid() {
		s.Parent = parent.SpanID().String()
	}
	return s
}

// jsonExporter writes each finished span as one JSON line: how the worker child process
// hands its spans to the test.
type jsonExporter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *jsonExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range spans {
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if err := e.enc.Encode(toSpan(s.Name(), s.SpanContext(), s.Parent(), s.SpanKind(), attrs, s.Status().Code == codes.Error)); err != nil {
			return err
		}
	}
	return nil
}

func (e *jsonExporter) Shutdown(context.Context) error { return nil }

func readSpans(t *testing.T, r io.Reader) []span {
	t.Helper()
	var out []span
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s span
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("span dump line %q: %v", sc.Text(), err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func stubSpans(stubs tracetest.SpanStubs) []span {
	var out []span
	for _, s := range stubs {
		attrs := map[string]string{}
		for _, kv := range s.Attributes {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		out = append(out, toSpan(s.Name, s.SpanContext, s.Parent, s.SpanKind, attrs, s.Status.Code == codes.Error))
	}
	return out
}

// recordSpans installs an SDK tracer provider that keeps every span in memory, for the rest
// of the test.
func recordSpans(t *testing.T) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		tp.Shutdown(context.Background())
	})
	return exp
}

// dumpSpansTo installs a tracer provider that writes every span to path as JSON lines; the
// returned function flushes and closes it.
func dumpSpansTo(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(&jsonExporter{enc: json.NewEncoder(f)}))
	otel.SetTracerProvider(tp)
	return func() error {
		if err := tp.Shutdown(context.Background()); err != nil {
			return err
		}
		return f.Close()
	}, nil
}
