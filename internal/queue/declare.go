package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/messages"
)

// Ensure declares StreamTasks (a work queue), StreamResults (latest result per task), the
// RunsBucket registry and the workers' durable pull consumer where they are missing, and
// returns the consumer. Existing ones are used as they are: every command runs Ensure, and
// one that was not asked to change the cluster (`runs`, a worker started without --replicas)
// must not re-declare a three-replica stream at one replica. A setting that differs from one
// asked for in cfg is logged as a warning naming the command that changes it.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Consumer, error) {
	asked := cfg
	cfg = cfg.withDefaults()
	for _, want := range []jetstream.StreamConfig{tasksStream(cfg), resultsStream(cfg)} {
		info, err := ensureStream(ctx, js, want)
		if err != nil {
			return nil, err
		}
		warnDiffs(cfg.Logger, "stream", want.Name, streamDiffs(info.Config, asked))
	}
	info, err := ensureBucket(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	warnDiffs(cfg.Logger, "key-value bucket", messages.RunsBucket, bucketDiffs(info.Config, asked))
	cons, err := ensureConsumer(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	warnDiffs(cfg.Logger, "consumer", messages.ConsumerWorkers, consumerDiffs(cons.CachedInfo().Config, asked))
	return cons, nil
}

func tasksStream(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        messages.StreamTasks,
		Description: "webnovel-backup tasks",
		Subjects:    []string{messages.TasksSubjects},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  time.Hour,
	}
}

func resultsStream(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              messages.StreamResults,
		Description:       "webnovel-backup task results",
		Subjects:          []string{messages.ResultsSubjects},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxAge:            cfg.ResultsMaxAge,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
	}
}

// ensureStream returns the stream's info, creating the stream if it does not exist.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	var info *jetstream.StreamInfo
	err := declare(ctx, "stream "+want.Name, func(ctx context.Context) error {
		s, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created meanwhile by another process
				s, err = js.Stream(ctx, want.Name)
			}
		}
		if err != nil {
			return err
		}
		info = s.CachedInfo()
		return nil
	})
	return info, err
}

// ensureBucket returns the info of the run registry's stream, creating the bucket if it does
// not exist.
func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg Config) (*jetstream.StreamInfo, error) {
	var info *jetstream.StreamInfo
	err := declare(ctx, "key-value bucket "+messages.RunsBucket, func(ctx context.Context) error {
		_, err := js.KeyValue(ctx, messages.RunsBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:      messages.RunsBucket,
				Description: "webnovel-backup runs",
				History:     1,
				TTL:         cfg.ResultsMaxAge * 8,
				Storage:     jetstream.FileStorage,
				Replicas:    cfg.Replicas,
			})
			if errors.Is(err, jetstream.ErrBucketExists) {
				err = nil
			}
		}
		if err != nil {
			return err
		}
		s, err := js.Stream(ctx, bucketStream(messages.RunsBucket))
		if err != nil {
			return err
		}
		info = s.CachedInfo()
		return nil
	})
	return info, err
}

// bucketStream is the name of the stream that holds a key-value bucket.
func bucketStream(bucket string) string { return "KV_" + bucket }

// ensureConsumer returns the workers' consumer, creating it if it does not exist.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Consumer, error) {
	var cons jetstream.Consumer
	err := declare(ctx, "consumer "+messages.ConsumerWorkers, func(ctx context.Context) error {
		var err error
		cons, err = js.Consumer(ctx, messages.StreamTasks, messages.ConsumerWorkers)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = js.CreateConsumer(ctx, messages.StreamTasks, jetstream.ConsumerConfig{
				Durable:       messages.ConsumerWorkers,
				Description:   "webnovel-backup workers",
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       cfg.AckWait,
				MaxDeliver:    cfg.MaxDeliver,
				MaxAckPending: 10000,
				Replicas:      cfg.Replicas,
			})
			if errors.Is(err, jetstream.ErrConsumerExists) {
				cons, err = js.Consumer(ctx, messages.StreamTasks, messages.ConsumerWorkers)
			}
		}
		return err
	})
	return cons, err
}

// diff is one setting of an existing stream or consumer that differs from the asked one.
type diff struct {
	setting    string // as the nats CLI's flag names it
	have, want string
}

func streamDiffs(have jetstream.StreamConfig, asked Config) []diff {
	var ds []diff
	if asked.Replicas > 0 && have.Replicas != asked.Replicas {
		ds = append(ds, diff{"replicas", strconv.Itoa(have.Replicas), strconv.Itoa(asked.Replicas)})
	}
	// Only the results stream has an age limit.
	if asked.ResultsMaxAge > 0 && have.Name == messages.StreamResults && have.MaxAge != asked.ResultsMaxAge {
		ds = append(ds, diff{"max-age", have.MaxAge.String(), asked.ResultsMaxAge.String()})
	}
	return ds
}

func bucketDiffs(have jetstream.StreamConfig, asked Config) []diff {
	if asked.Replicas > 0 && have.Replicas != asked.Replicas {
		return []diff{{"replicas", strconv.Itoa(have.Replicas), strconv.Itoa(asked.Replicas)}}
	}
	return nil
}

func consumerDiffs(have jetstream.ConsumerConfig, asked Config) []diff {
	var ds []diff
	// A consumer with Replicas 0 follows its stream: compare what it inherits.
	if asked.Replicas > 0 && have.Replicas != 0 && have.Replicas != asked.Replicas {
		ds = append(ds, diff{"replicas", strconv.Itoa(have.Replicas), strconv.Itoa(asked.Replicas)})
	}
	if asked.AckWait > 0 && have.AckWait != asked.AckWait {
		ds = append(ds, diff{"wait", have.AckWait.String(), asked.AckWait.String()})
	}
	if asked.MaxDeliver > 0 && have.MaxDeliver != asked.MaxDeliver {
		ds = append(ds, diff{"max-deliver", strconv.Itoa(have.MaxDeliver), strconv.Itoa(asked.MaxDeliver)})
	}
	return ds
}

// warnDiffs logs one warning per differing setting, with the nats CLI command that changes it.
func warnDiffs(log *slog.Logger, kind, name string, ds []diff) {
	for _, d := range ds {
		var how string
		switch kind {
		case "consumer":
			how = fmt.Sprintf("nats consumer edit %s %s --%s %s", messages.StreamTasks, name, d.setting, d.want)
		case "key-value bucket":
			how = fmt.Sprintf("nats stream edit %s --%s %s", bucketStream(name), d.setting, d.want)
		default:
			how = fmt.Sprintf("nats stream edit %s --%s %s", name, d.setting, d.want)
		}
		log.Warn("JetStream "+kind+" "+name+" exists with another "+d.setting+"; using it as it is",
			"have", d.have, "asked", d.want, "to_change", how)
	}
}

// Declaration attempts: each gets declareTimeout, then a short random pause.
const (
	declareAttempts = 6
	declareTimeout  = 5 * time.Second
)

// declare runs an idempotent declaration, again when the server does not answer in time. On a
// cluster, concurrent creations of one replicated stream or bucket (a coordinator and workers
// starting together) can all go unanswered, while a second attempt finds it and succeeds.
func declare(ctx context.Context, what string, f func(context.Context) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, declareTimeout)
		err = f(actx)
		cancel()
		if err == nil {
			return nil
		}
		unanswered := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
		// A cluster still forming can create a stream and then not find it for a moment
		// (seen at a cold start of three servers): asked again, it answers.
		forming := errors.Is(err, jetstream.ErrStreamNotFound)
		if !(unanswered || forming) || ctx.Err() != nil || attempt == declareAttempts {
			return fmt.Errorf("declare %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("declare %s: %w", what, err)
		case <-time.After(time.Duration(100+rand.IntN(400)) * time.Millisecond):
		}
	}
}
