// Package messages holds what the coordinator and the workers say to each other over JetStream:
// the stream and subject names, the versioned task and result types, and message headers.
//
// The coordinator and the workers never import each other; they meet only here and on the queue,
// which is what lets them run in different processes on different machines.
package messages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Version is the wire format version of Task and Result. A worker refuses a task of another
// version rather than guessing at its meaning: it publishes a final failure result that names
// both versions (see PeekTask), then terminates the message.
//
// Version 2: a copy task's SelfIndexedBase makes the worker check each linked copy's time,
// which the coordinator no longer checks itself; a version 1 worker would link without it.
const Version = 2

// Stream and consumer names.
const (
	// StreamTasks is the work-queue stream every task goes through.
	StreamTasks = "WNB_TASKS"
	// StreamResults keeps the latest result of every task (one message per subject).
	StreamResults = "WNB_RESULTS"
	// ConsumerWorkers is the one durable pull consumer all workers share.
	ConsumerWorkers = "workers"

	subjectTasks   = "wnb.tasks"
	subjectResults = "wnb.results"
)

// TasksSubjects is the subject filter of StreamTasks.
const TasksSubjects = subjectTasks + ".>"

// ResultsSubjects is the subject filter of StreamResults.
const ResultsSubjects = subjectResults + ".>"

// Task kinds.
const (
	// KindExportModel exports one model, or one primary-key range of it, as a fixture.
	KindExportModel = "export-model"
	// KindCopyPrefix copies a list of storage keys into the backup.
	KindCopyPrefix = "copy-prefix"
	// KindRestorePrefix copies a list of backed-up files into the platform's storage.
	KindRestorePrefix = "restore-prefix"
	// KindCopyBackup copies files of a complete backup into another destination's staging
	// area (or its object store), each checked on arrival against the SHA256 its key list
	// gives; an entry with Reuse is hard-linked from CopyTask.Base when both are local.
	KindCopyBackup = "copy-backup"
)

// MaxDeliveriesAdvisory is the core-NATS subject on which the server announces a task message
// that has exhausted its deliveries (it then stays in the stream, undelivered).
const MaxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamTasks + "." + ConsumerWorkers

// TerminatedAdvisory is the core-NATS subject on which the server announces a task message a
// worker terminated (the message is then removed from the work queue). A worker publishes a
// final result before it terminates a task, when it can.
const TerminatedAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + StreamTasks + "." + ConsumerWorkers

// TaskSubject is where a task of a run is published: wnb.tasks.<run>.<kind>.
func TaskSubject(run, kind string) string { return subjectTasks + "." + run + "." + kind }

// RunTasksSubject matches every task of a run (for purging a failed run's leftovers).
func RunTasksSubject(run string) string { return subjectTasks + "." + run + ".>" }

// ResultSubject is where the result of one task is published: wnb.results.<run>.<task>.
func ResultSubject(run, task string) string { return subjectResults + "." + run + "." + task }

// RunResultsSubject matches every result of a run.
func RunResultsSubject(run string) string { return subjectResults + "." + run + ".>" }

// MsgID is the Nats-Msg-Id of a task: a re-plan of the same run never duplicates work.
func MsgID(run, task string) string { return run + "/" + task }

// ValidToken reports whether s can stand as one subject token (run and task ids are tokens).
func ValidToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// Task is one unit of work.
type Task struct {
	Version int    `json:"v"`
	Run     string `json:"run"`
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	// Generation is the run record's generation when the task was published: a worker refuses
	// to write for a run whose record has moved on (finished, failed, cleaned up, or claimed by
	// a resume), so a late task never leaves orphans.
	Generation int `json:"gen,omitempty"`
	// Dest is the run's staging area, where outputs go: a folder path or storage URL.
	Dest   string      `json:"dest"`
	Export *ExportTask `json:"export,omitempty"`
	Copy   *CopyTask   `json:"copy,omitempty"`
}

// ExportTask exports the rows of one model: all of them as one fixture file (a coordinator of
// this version plans nothing else), read in Pieces when the model is large.
type ExportTask struct {
	// Database is the redacted URL of the database the coordinator reads; a worker configured
	// for another database refuses the task instead of exporting the wrong one.
	Database string `json:"database"`
	// Snapshot is the PostgreSQL exported snapshot, or the path of the SQLite snapshot copy.
	Snapshot string `json:"snapshot"`
	Model    string `json:"model"`
	// Lo and Hi bound the primary key, inclusive, when HasLo / HasHi. They are the whole
	// range of the task; without Pieces it is read as one piece.
	Lo    int64 `json:"lo,omitempty"`
	Hi    int64 `json:"hi,omitempty"`
	HasLo bool  `json:"has_lo,omitempty"`
	HasHi bool  `json:"has_hi,omitempty"`
	// Pieces, when set, are consecutive primary-key ranges covering the task's range in order:
	// the worker reads them in parallel (same snapshot) and writes them in this order into
	// the one output. A worker that does not know the field reads the whole range in one
	// piece, which writes the same bytes.
	Pieces []PKRange `json:"pieces,omitempty"`
	// Indent is the fixture format (fixture.Format.Indent).
	Indent int `json:"indent"`
	// Output is the key, under Dest, of what the task writes.
	Output string `json:"output"`
	// Whole is true when this task writes the model's complete fixture file (brackets included);
	// false (only from coordinators before Pieces) when it writes the objects alone.
	Whole bool `json:"whole"`
	// Recipients are the age public keys the output is encrypted to: the backup's, or in an
	// encrypted archive the run key's (the publish decrypts it into the archive's stream).
	Recipients []string `json:"recipients,omitempty"`
	// References, when set, is the key under Dest where the task writes the file paths its
	// rows name in file fields (JSON lines: model, pk, field, path), for the coordinator's
	// database ↔ storage cross-check. Empty: the run checks nothing (it backs up no files).
	References string `json:"references,omitempty"`
	// ReferencesRecipients, in an encrypted run, is the run key's public half: the reference
	// list is encrypted to it, so the staging area holds no plaintext row of the platform.
	ReferencesRecipients []string `json:"references_recipients,omitempty"`
}

// PKRange is one piece of an export: primary keys in [Lo, Hi], each bound only when HasLo /
// HasHi. Rows is the number of rows the coordinator planned in it (for logs and spans).
type PKRange struct {
	Lo    int64 `json:"lo,omitempty"`
	Hi    int64 `json:"hi,omitempty"`
	HasLo bool  `json:"has_lo,omitempty"`
	HasHi bool  `json:"has_hi,omitempty"`
	Rows  int64 `json:"rows,omitempty"`
}

// CopyTask copies the storage keys listed in KeyList from Source to Dest: for a backup from
// the platform's storage into the run's staging folder, for a restore from a backup's files/
// into the platform's storage.
type CopyTask struct {
	// Source is where the keys are read: the (redacted) platform storage URL for a backup —
	// the worker reads its own configured storage and checks it is this one — or the backup
	// folder for a restore.
	Source string `json:"source"`
	// SourcePrefix is put in front of each key when reading ("files/" when restoring).
	SourcePrefix string `json:"source_prefix,omitempty"`
	// Prefix is the top-level storage prefix the keys belong to (content/, images/, media/).
	Prefix string `json:"prefix"`
	// ListStore is the location of KeyList and Sums; empty means Dest.
	ListStore string `json:"list_store,omitempty"`
	// KeyList is the key, under ListStore, of a JSON-lines file of FileEntry (Key, Size and,
	// when restoring, the SHA256 each file must have): bulk data stays out of messages.
	KeyList string `json:"key_list"`
	// DestPrefix is put in front of each key in Dest ("files/" when backing up).
	DestPrefix string `json:"dest_prefix"`
	// Sums is the key, under ListStore, where the task writes a FileEntry (Path, SHA256, Size)
	// for each file it copied.
	Sums  string `json:"sums"`
	Keys  int    `json:"keys"`
	Bytes int64  `json:"bytes"`
	// Base is the location (folder or storage URL) under which the key list's Reuse keys
	// are: the destination's root, which holds the earlier backups (or the object store).
	Base string `json:"base,omitempty"`
	// Checksum makes the worker hash each source file with a Reuse and reuse the earlier
	// copy only when the sums are equal (backup --checksum), instead of trusting size and
	// modification time.
	Checksum bool `json:"checksum,omitempty"`
	// SelfIndexedBase says the Reuse copies are a self-indexed base's (a local folder whose
	// copies keep their sources' sizes and modification times), which the coordinator did
	// not stat: a linked copy stands for the file only when the link has the entry's Size
	// and, without Checksum, its ModTime; otherwise the file changed, and the worker copies
	// it over the link.
	SelfIndexedBase bool `json:"self_indexed_base,omitempty"`
	// Objects, when set, is the location of a content-addressed object store (an S3
	// destination's objects/): each file is stored once, under layout.ObjectKey(sum) there,
	// instead of under Dest/DestPrefix+key.
	Objects string `json:"objects,omitempty"`
	// Archive, when set, makes a backup's task write its files as one part of a compressed
	// archive (backup --compress) instead of one file each under DestPrefix.
	Archive *ArchivePart `json:"archive,omitempty"`
	// Recipients, on a backup's copy, are the age public keys its output is encrypted to:
	// each file stored as NAME.age (an archive part: the part as a whole, to the run key).
	// Only public keys travel in tasks; nothing here can decrypt.
	Recipients []string `json:"recipients,omitempty"`
	// Decrypt, on a restore, says the backup's files are age-encrypted: the worker decrypts
	// them with its own identities (its --identity), which never travel in a task.
	Decrypt bool `json:"decrypt,omitempty"`
	// Staged, on a restore of an encrypted backup into a local storage, is the folder on the
	// storage's filesystem into which the restore's check pass decrypted (and checked) each
	// file, named StagedName(key): the worker links it into place instead of decrypting the
	// backup's copy again. A file not found there is decrypted from Source as without it.
	Staged string `json:"staged,omitempty"`
	// LinkSource, on a restore, says Source is the restore's own unpacked copy of an archive:
	// private to the run, checked against SHA256SUMS before the task was planned, and
	// removed after it. A worker may then hard-link each file into a local storage instead
	// of copying it (the copy's permissions and time are given to that copy first, which the
	// link shares). Never set for a backup folder, whose files a link would let the platform
	// change in place, nor for an object store or an encrypted backup's files.
	LinkSource bool `json:"link_source,omitempty"`
}

// StagedName is the name, in a CopyTask's Staged folder, of the file restored to key: a
// temporary file's name (storage.TempPrefix, which a storage listing never shows), so that a
// restore killed while staging leaves nothing that is taken for data.
func StagedName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return ".wnb-tmp-" + hex.EncodeToString(sum[:16])
}

// ArchivePart is one part of an archive that a copy task writes: tar entries named
// Top/DestPrefix+key (or Top/Stored), compressed as whole members, without the end blocks, so
// that the parts of a run concatenate into one archive.
type ArchivePart struct {
	// Output is the part's key under Dest.
	Output string `json:"output"`
	// Top is the archive's top folder, the backup's name (backup_YYYYMMDD_HHMMSS).
	Top string `json:"top"`
	// Compression is gzip, zstd or none.
	Compression string `json:"compression"`
}

// Result is what a worker publishes about a task: once per failed attempt (Final false) and
// once at the end (Final true). Only the latest is kept per task.
type Result struct {
	Version int    `json:"v"`
	Run     string `json:"run"`
	Task    string `json:"task"`
	Kind    string `json:"kind"`
	// Final is true when the task is done: succeeded, or failed for good.
	Final bool `json:"final"`
	// Error is empty on success.
	Error   string `json:"error,omitempty"`
	Attempt int    `json:"attempt"`
	Worker  string `json:"worker"`
	Rows    int64  `json:"rows,omitempty"`
	Files   int64  `json:"files,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	// PlainSHA256 is, for an export encrypted to ExportTask.Recipients, the SHA-256 of the
	// fixture's plaintext (SHA256 and Bytes are those of the bytes stored).
	PlainSHA256 string `json:"plain_sha256,omitempty"`
	// PlainBytes is, with PlainSHA256, the size of the fixture's plaintext.
	PlainBytes int64    `json:"plain_bytes,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
	// Failed counts files a restore task could not write (the task still succeeds, so the
	// other files are restored); Failures names the first of them with their causes.
	Failed   int64    `json:"failed,omitempty"`
	Failures []string `json:"failures,omitempty"`
	// Skipped counts, by kind, the entries a backup's copy found not to be regular files
	// (put in place of a listed file since): each is also named in Warnings.
	Skipped map[string]int64 `json:"skipped,omitempty"`
	// Reused and ReusedBytes count the files (and their bytes) of Files that were not stored
	// again but reused from an earlier backup (FileEntry.Reuse).
	Reused      int64         `json:"reused,omitempty"`
	ReusedBytes int64         `json:"reused_bytes,omitempty"`
	Duration    time.Duration `json:"duration_ns"`
	// Mismatch is true on a non-final result of a worker configured for another database or
	// storage than the task's: it handed the task back for a correctly configured worker, and
	// Error names the mismatch (what the coordinator reports if no such worker comes).
	Mismatch bool `json:"mismatch,omitempty"`
}

// OK reports whether the task succeeded.
func (r *Result) OK() bool { return r.Final && r.Error == "" }

// Marshal encodes a task or result.
func Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// DecodeTask parses and checks a task message.
func DecodeTask(data []byte) (*Task, error) {
	var t Task
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("decode task: %w", err)
	}
	if t.Version != Version {
		return nil, fmt.Errorf("decode task %q: wire version %d, this build speaks %d", t.ID, t.Version, Version)
	}
	if !ValidToken(t.Run) || !ValidToken(t.ID) {
		return nil, fmt.Errorf("decode task: bad run %q or task id %q", t.Run, t.ID)
	}
	switch {
	case t.Kind == KindExportModel && t.Export != nil:
	case (t.Kind == KindCopyPrefix || t.Kind == KindRestorePrefix || t.Kind == KindCopyBackup) && t.Copy != nil:
	default:
		return nil, fmt.Errorf("decode task %q: kind %q without its body", t.ID, t.Kind)
	}
	return &t, nil
}

// PeekTask reads what it can of a task message that DecodeTask refuses: its run and id, each
// only when it is a valid subject token ("" otherwise), and its wire version (0 when absent).
// With run and id a worker can still publish a result that says why it cannot run the task.
func PeekTask(data []byte) (run, id string, version int) {
	var loose struct {
		Version json.RawMessage `json:"v"`
		Run     json.RawMessage `json:"run"`
		ID      json.RawMessage `json:"id"`
	}
	if json.Unmarshal(data, &loose) != nil {
		return "", "", 0
	}
	var v int
	json.Unmarshal(loose.Version, &v) // a version of another type stays 0
	token := func(raw json.RawMessage) string {
		var s string
		if json.Unmarshal(raw, &s) != nil || !ValidToken(s) {
			return ""
		}
		return s
	}
	return token(loose.Run), token(loose.ID), v
}

// DecodeResult parses a result message.
func DecodeResult(data []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	if r.Version != Version {
		return nil, fmt.Errorf("decode result %q: wire version %d, this build speaks %d", r.Task, r.Version, Version)
	}
	if !ValidToken(r.Run) || !ValidToken(r.Task) {
		return nil, fmt.Errorf("decode result: bad run %q or task id %q", r.Run, r.Task)
	}
	if field, n := r.negativeCount(); field != "" {
		return nil, fmt.Errorf("decode result %q: %s is %d", r.Task, field, n)
	}
	return &r, nil
}

// negativeCount names a count of r that is below zero (none: ""): the coordinator adds the
// counts into the backup's metadata, where a negative one would hide others.
func (r *Result) negativeCount() (string, int64) {
	for _, c := range []struct {
		name string
		n    int64
	}{{"rows", r.Rows}, {"files", r.Files}, {"bytes", r.Bytes}, {"plain_bytes", r.PlainBytes},
		{"failed", r.Failed}, {"reused", r.Reused}, {"reused_bytes", r.ReusedBytes}} {
		if c.n < 0 {
			return c.name, c.n
		}
	}
	for kind, n := range r.Skipped {
		if n < 0 {
			return "skipped " + kind, n
		}
	}
	return "", 0
}
