package telemetry

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/messages"
)

// InstrumentationName names this tool's tracer.
const InstrumentationName = "github.com/webnovel/webnovel-backup"

// Span attribute keys.
const (
	KeyRun     = attribute.Key("wnb.run.id")
	KeyTask    = attribute.Key("wnb.task.id")
	KeyKind    = attribute.Key("wnb.task.kind")
	KeyModel   = attribute.Key("wnb.model")
	KeyRows    = attribute.Key("wnb.rows")
	KeyPrefix  = attribute.Key("wnb.prefix")
	KeyFiles   = attribute.Key("wnb.files")
	KeyBytes   = attribute.Key("wnb.bytes")
	KeyTasks   = attribute.Key("wnb.tasks")
	KeyWorker  = attribute.Key("wnb.worker")
	KeyAttempt = attribute.Key("wnb.delivery.attempt")
	KeyOutcome = attribute.Key("wnb.outcome")
	KeyKey     = attribute.Key("wnb.storage.key")
)

// Outcomes of a task attempt, as span attributes and metric labels.
const (
	OutcomeSuccess = "success"
	// OutcomeRetry is a failed attempt that will be delivered again.
	OutcomeRetry = "retry"
	// OutcomeFailed is a task that failed for good.
	OutcomeFailed = "failed"
	// OutcomeHandedBack is a task given back to the queue unfinished (shutdown, or its result
	// could not be published).
	OutcomeHandedBack = "handed_back"
)

// Tracer is this tool's tracer, from the global provider at the time of the call, so a
// provider installed after start-up (Setup, a test) is used.
func Tracer() trace.Tracer { return otel.Tracer(InstrumentationName) }

// Start starts an internal span.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return Tracer().Start(ctx, name, trace.WithAttributes(attrs...))
}

// End records err, if any, on span and ends it.
func End(span trace.Span, err error) {
	recordError(span, err)
	span.End()
}

// EndErr is End for a deferred call on a function's named error. A span already ended
// explicitly is left alone (ending twice is a no-op, and so is recording on an ended span).
func EndErr(span trace.Span, errp *error) {
	End(span, *errp)
}

func recordError(span trace.Span, err error) {
	if err == nil {
		return
	}
	msg := redact.Text(err.Error()) // a trace is an output like any other
	span.RecordError(errors.New(msg))
	span.SetStatus(codes.Error, msg)
}

// Annotate sets attributes on the span of ctx.
func Annotate(ctx context.Context, attrs ...attribute.KeyValue) {
	trace.SpanFromContext(ctx).SetAttributes(attrs...)
}

// TraceID is the trace id of ctx's span in hex, or "" when it is not traced.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// StartRun starts the root span of a run (kind "backup" or "restore"): always a new trace,
// whatever ctx carries, so that one run is one trace.
func StartRun(ctx context.Context, kind string) (context.Context, trace.Span) {
	return Tracer().Start(ctx, kind, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindInternal))
}

// EndRun records a run's outcome (outcome.Of of its error, the one mapping every command's
// output shares) on its root span and in the metrics, and ends the span. took is the run's
// duration; a complete backup or restore sets the last-success gauges.
func EndRun(span trace.Span, kind string, oc outcome.Outcome, took time.Duration, err error) {
	span.SetAttributes(KeyOutcome.String(oc.Label))
	runEnded(kind, oc, took)
	End(span, err)
}

// taskAttrs describe a task on its producer and consumer spans.
func taskAttrs(subject string, t *messages.Task) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", subject),
		KeyRun.String(t.Run), KeyTask.String(t.ID), KeyKind.String(t.Kind),
	}
	if t.Export != nil {
		attrs = append(attrs, KeyModel.String(t.Export.Model))
	}
	if t.Copy != nil {
		attrs = append(attrs, KeyPrefix.String(t.Copy.Prefix), KeyFiles.Int(t.Copy.Keys), KeyBytes.Int64(t.Copy.Bytes))
	}
	return attrs
}

// StartPublish starts the producer span of a task published on subject and writes its trace
// context into h, the task message's headers.
func StartPublish(ctx context.Context, subject string, t *messages.Task, h nats.Header) (context.Context, trace.Span) {
	ctx, span := Tracer().Start(ctx, "publish "+t.Kind, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(taskAttrs(subject, t)...),
		trace.WithAttributes(attribute.String("messaging.operation.type", "send")))
	Inject(ctx, h)
	return ctx, span
}

// StartTask starts the consumer span of a task a worker took, as the child of the producer
// span whose context the message headers h carry, and counts the task as in flight (and as a
// redelivery after the first attempt). EndTask ends both.
func StartTask(ctx context.Context, h nats.Header, subject string, t *messages.Task, attempt int, worker string) (context.Context, trace.Span) {
	ctx = Extract(ctx, h)
	ctx, span := Tracer().Start(ctx, "process "+t.Kind, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(taskAttrs(subject, t)...),
		trace.WithAttributes(attribute.String("messaging.operation.type", "process"),
			KeyWorker.String(worker), KeyAttempt.Int(attempt)))
	taskStarted(t.Kind, attempt)
	return ctx, span
}

// TaskOutcome is the outcome of a settled attempt, read from its result.
func TaskOutcome(res *messages.Result) string {
	switch {
	case res.Final && res.Error == "":
		return OutcomeSuccess
	case res.Final:
		return OutcomeFailed
	case res.Error != "":
		return OutcomeRetry
	default:
		return OutcomeHandedBack
	}
}

// EndTask records a settled task attempt (res as the worker published it, err what the task
// returned) on its span and in the metrics, and ends the span.
func EndTask(span trace.Span, res *messages.Result, err error) {
	outcome := TaskOutcome(res)
	span.SetAttributes(KeyOutcome.String(outcome), KeyRows.Int64(res.Rows), KeyFiles.Int64(res.Files), KeyBytes.Int64(res.Bytes))
	taskEnded(res, outcome)
	End(span, err)
}
