package telemetry_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/webnovel/webnovel-backup/internal/telemetry"
)

// otelVars are every variable Setup reads; tests clear them all, so the machine's own
// environment cannot turn tracing on.
var otelVars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}

func clearOtelEnv(t *testing.T) {
	t.Helper()
	for _, k := range otelVars {
		t.Setenv(k, "")
	}
}

// keepGlobals restores the global tracer provider and propagator Setup replaces.
func keepGlobals(t *testing.T) {
	t.Helper()
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(prop)
	})
}

func TestTraceConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    telemetry.TraceConfig
		wantErr bool
	}{
		{name: "nothing set", env: nil, want: telemetry.TraceConfig{}},
		{name: "endpoint, default protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			want: telemetry.TraceConfig{Enabled: true, Protocol: telemetry.ProtocolHTTP}},
		{name: "traces endpoint only", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"},
			want: telemetry.TraceConfig{Enabled: true, Protocol: telemetry.ProtocolHTTP}},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			want: telemetry.TraceConfig{Enabled: true, Protocol: telemetry.ProtocolGRPC}},
		{name: "traces protocol wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			want: telemetry.TraceConfig{Enabled: true, Protocol: telemetry.ProtocolGRPC}},
		{name: "protocol without endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: telemetry.TraceConfig{}},
		{name: "sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
			want: telemetry.TraceConfig{}},
		{name: "exporter none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
			want: telemetry.TraceConfig{}},
		{name: "unknown protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: true},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
			wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := telemetry.TraceConfigFromEnv(func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Without an endpoint Setup installs nothing: the global tracer provider stays what it was
// (OpenTelemetry's no-op default) and spans are neither recorded nor propagated.
func TestSetupWithoutEndpointInstallsNothing(t *testing.T) {
	clearOtelEnv(t)
	keepGlobals(t)
	before := otel.GetTracerProvider()
	shutdown, err := telemetry.Setup(context.Background(), "webnovel-backup")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if got := otel.GetTracerProvider(); got != before {
		t.Fatalf("Setup replaced the tracer provider with %T", got)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Fatal("an SDK tracer provider is installed")
	}
	ctx, span := telemetry.StartRun(context.Background(), "backup")
	defer span.End()
	if span.IsRecording() || telemetry.TraceID(ctx) != "" {
		t.Fatalf("a span is recorded without tracing: recording %v, trace %q", span.IsRecording(), telemetry.TraceID(ctx))
	}
}

func TestSetupDisabledInstallsNothing(t *testing.T) {
	clearOtelEnv(t)
	keepGlobals(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	before := otel.GetTracerProvider()
	shutdown, err := telemetry.Setup(context.Background(), "webnovel-backup")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if otel.GetTracerProvider() != before {
		t.Fatal("OTEL_SDK_DISABLED=true, yet Setup installed a tracer provider")
	}
}

// exportedSpans decodes OTLP requests into service name → span names.
type exportedSpans struct {
	mu    sync.Mutex
	names map[string][]string
}

func (e *exportedSpans) add(req *coltrace.ExportTraceServiceRequest) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.names == nil {
		e.names = map[string][]string{}
	}
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, kv := range rs.Resource.GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				e.names[service] = append(e.names[service], s.Name)
			}
		}
	}
}

func (e *exportedSpans) get() map[string][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.names
}

// traceOne sets tracing up from the environment, records one span and flushes it.
func traceOne(t *testing.T) {
	t.Helper()
	shutdown, err := telemetry.Setup(context.Background(), "webnovel-backup")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); !ok {
		t.Fatalf("with an endpoint, the tracer provider is %T", otel.GetTracerProvider())
	}
	_, span := telemetry.StartRun(context.Background(), "backup")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func TestSetupExportsOTLPHTTP(t *testing.T) {
	clearOtelEnv(t)
	keepGlobals(t)
	var got exportedSpans
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP request %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("decode OTLP request: %v", err)
		}
		got.add(&req)
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(b)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL) // the exporter appends /v1/traces
	t.Setenv("OTEL_SERVICE_NAME", "wnb-test")
	traceOne(t)
	if names := got.get()["wnb-test"]; len(names) != 1 || names[0] != "backup" {
		t.Fatalf("exported spans by service: %v; want wnb-test: [backup]", got.get())
	}
}

type collector struct {
	coltrace.UnimplementedTraceServiceServer
	spans *exportedSpans
}

func (c collector) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	c.spans.add(req)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func TestSetupExportsOTLPGRPC(t *testing.T) {
	clearOtelEnv(t)
	keepGlobals(t)
	var got exportedSpans
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, collector{spans: &got})
	go srv.Serve(ln)
	defer srv.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+ln.Addr().String()) // http: plaintext
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,deployment.environment=test")
	traceOne(t)
	if names := got.get()["from-attributes"]; len(names) != 1 || names[0] != "backup" {
		t.Fatalf("exported spans by service: %v; want from-attributes: [backup]", got.get())
	}
}

// TestSetupSendsSDKMessagesToTheLog: the OpenTelemetry SDK's own messages (here, about an OTLP
// header it cannot read, which it quotes whole) go to the slog default of the moment, the
// command's log, which is redacted and in the command's format, not to the SDK's own stderr
// logger.
func TestSetupSendsSDKMessagesToTheLog(t *testing.T) {
	clearOtelEnv(t)
	keepGlobals(t)
	var logged bytes.Buffer
	before := slog.Default()
	t.Cleanup(func() { slog.SetDefault(before) })
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logged, nil)))
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%zz")
	shutdown, err := telemetry.Setup(context.Background(), "webnovel-backup")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shutdown(ctx)
	if !strings.Contains(logged.String(), `"msg":"escape header value"`) {
		t.Fatalf("the SDK's message did not reach the command's log:\n%s", logged.String())
	}
}
