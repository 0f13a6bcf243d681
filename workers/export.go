package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"go.opentelemetry.io/otel/attribute"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// export writes one model's rows to the destination: its pieces read in parallel and written
// in order, hashed (and encrypted) as they are written.
func (w *Worker) export(ctx context.Context, t *messages.Task) (*messages.Result, error) {
	e := t.Export
	model, ok := platform.Default.Model(e.Model)
	if !ok {
		return nil, Permanent(fmt.Errorf("export %s: unknown model", e.Model))
	}
	db, err := w.database(ctx)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", e.Model, err)
	}
	if got := db.Source().Redacted; got != e.Database {
		return nil, Mismatch(fmt.Errorf("export %s: this worker reads %s but the run backs up %s", e.Model, got, e.Database))
	}
	dest, err := storage.Open(ctx, t.Dest)
	if err != nil {
		return nil, Permanent(fmt.Errorf("export %s: %w", e.Model, err))
	}
	defer dest.Close()
	out, err := dest.Create(ctx, e.Output, storage.Object{Mode: backupFileMode})
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", e.Model, err)
	}
	defer out.Abort()

	// The rows read and the bytes written are the export's progress: a database that stops
	// answering mid-query stops both.
	meter := meterOf(ctx)
	meter.arm()
	sink, err := newExportSink(metered(out, meter), e.Recipients)
	if err != nil {
		return nil, Permanent(fmt.Errorf("export %s: %w", e.Model, err))
	}
	cw := sink.body
	f := fixture.Format{Indent: e.Indent}
	var body io.Writer = cw
	var opener *openOnWrite
	if e.Whole {
		opener = &openOnWrite{w: cw, open: f.Open()}
		body = opener
	}
	refs, err := startRefs(ctx, dest, e, model)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", e.Model, err)
	}
	defer refs.abort()
	body = refs.writer(body)
	ectx, span := telemetry.Start(ctx, "database.export", telemetry.KeyModel.String(e.Model), attribute.Int64("wnb.pk.lo", e.Lo), attribute.Int64("wnb.pk.hi", e.Hi), attribute.Int("wnb.pieces", max(len(e.Pieces), 1)))
	// Values written changed (invalid UTF-8 text) are warnings of the run, naming each row.
	rows, warnings, err := exportPieces(e, db, model, f).run(ectx, body)
	span.SetAttributes(telemetry.KeyRows.Int64(rows), telemetry.KeyBytes.Int64(cw.n))
	telemetry.End(span, err)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", e.Model, err)
	}
	if e.Whole {
		end := f.Close()
		if !opener.opened {
			end = f.Empty()
		}
		if _, err := io.WriteString(cw, end); err != nil {
			return nil, fmt.Errorf("export %s: %w", e.Model, err)
		}
	}
	if err := sink.close(); err != nil {
		return nil, fmt.Errorf("export %s: %w", e.Model, err)
	}
	if err := refs.finish(); err != nil {
		return nil, fmt.Errorf("export %s: %w", e.Model, err)
	}
	if err := out.Commit(); err != nil {
		return nil, fmt.Errorf("export %s: %w", e.Model, err)
	}
	res := &messages.Result{Rows: rows, Bytes: sink.stored.n, SHA256: hexSum(sink.storedSum), Warnings: warnings}
	if sink.sealed != nil {
		res.PlainSHA256, res.PlainBytes = hexSum(sink.plainSum), sink.body.n
	}
	return res, nil
}

// pieceReader is what an export reads rows with: the database, in the run's snapshot.
type pieceReader interface {
	ExportWithWarnings(ctx context.Context, snapshotID string, m platform.Model, r database.Range, f fixture.Format, w io.Writer) (int64, []string, error)
}

// exportPieces is the ordered reading of e's pieces (its one range when it has none).
func exportPieces(e *messages.ExportTask, db pieceReader, model platform.Model, f fixture.Format) *orderedPieces {
	ranges := make([]database.Range, 0, max(len(e.Pieces), 1))
	for _, p := range e.Pieces {
		ranges = append(ranges, database.Range{Lo: p.Lo, Hi: p.Hi, HasLo: p.HasLo, HasHi: p.HasHi, Rows: p.Rows})
	}
	if len(ranges) == 0 {
		ranges = append(ranges, database.Range{Lo: e.Lo, Hi: e.Hi, HasLo: e.HasLo, HasHi: e.HasHi})
	}
	n := pieceReaders()
	return &orderedPieces{
		n: len(ranges), sep: f.Sep(), parallel: n, window: 2 * n, budget: pieceBudget,
		name: func(i int) string { return ranges[i].String() },
		read: func(ctx context.Context, i int, w io.Writer) (int64, []string, error) {
			return db.ExportWithWarnings(ctx, e.Snapshot, model, ranges[i], f, metered(w, meterOf(ctx)))
		},
	}
}

// exportSink is where an export writes its fixture: body counts and hashes the plaintext;
// with recipients it is encrypted on its way to the output, whose bytes stored counts and
// storedSum hashes (without, the two are the plaintext's).
type exportSink struct {
	body                *countingWriter
	stored              *countingWriter
	sealed              io.WriteCloser
	plainSum, storedSum hash.Hash
}

// newExportSink wraps out, encrypting to recipients (age public keys) when there are any.
func newExportSink(out io.Writer, recipients []string) (*exportSink, error) {
	s := &exportSink{plainSum: sha256.New(), storedSum: sha256.New()}
	s.stored = &countingWriter{w: io.MultiWriter(out, s.storedSum)}
	if len(recipients) == 0 {
		s.plainSum = s.storedSum
		s.body = s.stored
		return s, nil
	}
	rc, err := encryption.RecipientsFromPublic(recipients)
	if err != nil {
		return nil, err
	}
	if s.sealed, err = rc.Encrypt(s.stored); err != nil {
		return nil, err
	}
	s.body = &countingWriter{w: io.MultiWriter(s.sealed, s.plainSum)}
	return s, nil
}

// close ends the age stream, if any (its last chunk): the output is whole only then.
func (s *exportSink) close() error {
	if s.sealed == nil {
		return nil
	}
	return s.sealed.Close()
}

// openOnWrite writes the fixture's opening bracket before the first object, so an empty table
// can be written as Format.Empty instead.
type openOnWrite struct {
	w      io.Writer
	open   string
	opened bool
}

func (o *openOnWrite) Write(p []byte) (int, error) {
	if !o.opened && len(p) > 0 {
		o.opened = true
		if _, err := io.WriteString(o.w, o.open); err != nil {
			return 0, err
		}
	}
	return o.w.Write(p)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
