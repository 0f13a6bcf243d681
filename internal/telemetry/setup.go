// Package telemetry holds the tool's tracing and metrics: OpenTelemetry set-up from the
// standard OTEL_* variables, trace context carried in NATS message headers, the spans of a run
// and of its tasks, and a Prometheus endpoint.
//
// Without an OTLP endpoint nothing is installed: the global OpenTelemetry tracer stays the
// no-op one, so the spans the other packages start cost next to nothing.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL this tool speaks.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// TraceConfig is what the OTEL_* variables ask of tracing.
type TraceConfig struct {
	// Enabled is false when no OTLP endpoint is set, or the SDK or the traces exporter is
	// switched off.
	Enabled bool
	// Protocol is ProtocolGRPC or ProtocolHTTP.
	Protocol string
}

// TraceConfigFromEnv reads the variables that decide whether and how spans are exported.
// The exporters read the rest (endpoint details, headers, TLS, timeouts) themselves.
func TraceConfigFromEnv(getenv func(string) string) (TraceConfig, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return TraceConfig{}, nil
	}
	switch strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")) {
	case "", "otlp":
	case "none":
		return TraceConfig{}, nil
	default:
		return TraceConfig{}, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: only otlp and none are supported", getenv("OTEL_TRACES_EXPORTER"))
	}
	if getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return TraceConfig{}, nil
	}
	proto := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if proto == "" {
		proto = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch proto {
	case "":
		proto = ProtocolHTTP // the specification's default
	case ProtocolGRPC, ProtocolHTTP:
	default:
		return TraceConfig{}, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: want %s or %s", proto, ProtocolGRPC, ProtocolHTTP)
	}
	return TraceConfig{Enabled: true, Protocol: proto}, nil
}

// Setup installs tracing as the OTEL_* variables describe: with an OTLP endpoint, an SDK
// tracer provider exporting in batches over gRPC or HTTP, and the W3C trace context
// propagator; without one, nothing at all. service is the service.name unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise. shutdown flushes what is
// buffered; call it before the process exits.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	cfg, err := TraceConfigFromEnv(os.Getenv)
	if err != nil || !cfg.Enabled {
		return noop, err
	}
	// The SDK's own messages go through the command's log, in its format and redacted: the
	// SDK quotes the headers and endpoint it refuses, which may hold credentials.
	otel.SetLogger(logr.FromSlogHandler(currentHandler{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { slog.Warn("tracing", "err", err) }))
	var exp sdktrace.SpanExporter
	switch cfg.Protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return noop, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), // last, so OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		exp.Shutdown(ctx)
		return noop, fmt.Errorf("tracing: resource: %w", err)
	}
	// The sampler is left unset so the SDK reads OTEL_TRACES_SAMPLER(_ARG).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}

// currentHandler hands each record to the slog default of the moment: tracing is set up before
// the command line picks the log format and level.
type currentHandler struct{}

func (currentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return slog.Default().Handler().Enabled(ctx, l)
}

func (currentHandler) Handle(ctx context.Context, r slog.Record) error {
	return slog.Default().Handler().Handle(ctx, r)
}

func (currentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return slog.Default().Handler().WithAttrs(as)
}

func (currentHandler) WithGroup(name string) slog.Handler {
	return slog.Default().Handler().WithGroup(name)
}
