package layout

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// FormatVersion is the backup_metadata.json format this package writes and
// the newest it reads. Metadata written by the Python command has no
// format_version and parses as version 0.
const FormatVersion = 1

// Values of the metadata's string enums, as Django names them.
const (
	StatusComplete = "complete"

	StorageFileSystem = "FileSystemStorage"
	StorageS3         = "S3Boto3Storage"

	EnginePostgres = "django.db.backends.postgresql"
	EngineSQLite   = "django.db.backends.sqlite3"

	// DjangoVersion is the Django version of the platform whose fixtures
	// this tool writes.
	DjangoVersion = "3.2.25"
)

// Metadata is the content of backup_metadata.json. The first five fields
// are the Python command's keys; the rest are added by this tool. JSON keys
// are written in field order.
type Metadata struct {
	// BackupTimestamp is when the backup started. It is written as Python's
	// datetime.now().isoformat(): local time without offset,
	// "2024-12-01T14:30:22.123456" (no fraction when microseconds are 0).
	BackupTimestamp time.Time     `json:"-"`
	DjangoVersion   string        `json:"django_version"`
	BackupOptions   BackupOptions `json:"backup_options"`
	StorageBackend  string        `json:"storage_backend"` // StorageFileSystem or StorageS3
	DatabaseEngine  string        `json:"database_engine"` // EnginePostgres or EngineSQLite

	FormatVersion   int          `json:"format_version"` // 0: written by Python
	ToolVersion     string       `json:"tool_version"`
	RunID           string       `json:"run_id"`
	Status          string       `json:"status"` // StatusComplete
	Models          []ModelEntry `json:"models"` // in dependency (load) order
	Files           FilesSummary `json:"files"`
	Warnings        []string     `json:"warnings"`
	DurationSeconds float64      `json:"duration_seconds"`
	Workers         int          `json:"workers"`
	ManifestSHA256  string       `json:"manifest_sha256"` // sha256 of SHA256SUMS
	TraceID         string       `json:"trace_id,omitempty"`
	Database        string       `json:"database"` // redacted URL: never a password
	Storage         string       `json:"storage"`  // redacted URL: never a password
	// FixtureIndent is the fixtures' --indent: 0 is this tool's default
	// one-object-per-line layout.
	FixtureIndent int `json:"fixture_indent"`
	// CopiedFrom is set on a backup that webnovel-backup copy wrote into another destination:
	// where it was copied from and when (nil on the original).
	CopiedFrom *CopiedFrom `json:"copied_from,omitempty"`
	// Encryption is set on an age-encrypted backup (nil: not encrypted). It holds public
	// keys and names only: list, prune, copy and verify work without the secret key.
	Encryption *Encryption `json:"encryption,omitempty"`
	// Archive is set in an encrypted archive's sidecar: the SHA-256 and size of the .age
	// file's bytes, which verify and copy check without the key.
	Archive *ArchiveInfo `json:"archive,omitempty"`
	// References is the database ↔ storage cross-check (nil in older backups).
	References *References `json:"references,omitempty"`
	// Migrations are the applied Django migrations (django_migrations rows) of the apps
	// the backed-up models belong to, app label → names in the order applied, read in the
	// backup's snapshot. Nil when not recorded (a Python backup, an older one, or a database
	// without django_migrations): a restore then checks the target's columns only.
	Migrations map[string][]string `json:"migrations,omitempty"`
	// Permissions are the Django auth permissions the backed-up rows name by id (users'
	// user_permissions): id → "app_label.model.codename". A restore checks that its target
	// gives each id the same permission: ids follow the order migrations ran in, and another
	// order would grant other permissions. Nil when not recorded.
	Permissions map[string]string `json:"permissions,omitempty"`
}

// ArchiveInfo describes the bytes of an encrypted archive, as its sidecar records them.
type ArchiveInfo struct {
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// Encryption describes an age-encrypted backup: every fixture and file is stored as
// NAME.age (an archive is encrypted as a whole), SHA256SUMS lists the bytes as stored, and
// PlainSums are encrypted manifests of the plaintext sums.
type Encryption struct {
	// Format is "age".
	Format string `json:"format"`
	// Mode is "recipients" (public keys the operator gave) or "passphrase" (a key the tool
	// generated, sealed with the passphrase in Key).
	Mode string `json:"mode"`
	// Recipients are the public keys, canonical and sorted: a later backup reuses this one's
	// files only when it is encrypted to the same list.
	Recipients []string `json:"recipients"`
	// Key is, in passphrase mode, the file holding the backup key sealed with the passphrase.
	Key string `json:"key,omitempty"`
	// PlainSums lists, oldest first, the encrypted manifests of plaintext sums
	// ("plainsums/<run>.age": "<sha256>  <path>" lines, sorted by path, path without .age)
	// that cover this backup's files and fixtures: its own, and those of the bases whose
	// copies it reused. For a path in several, the newest holds its sum.
	PlainSums []string `json:"plain_sums,omitempty"`
}

// CopiedFrom says where a copied backup came from.
type CopiedFrom struct {
	// Source is the original backup's location (redacted URL or path).
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	// Run is the copy's run id.
	Run string `json:"run"`
}

// BackupOptions are the options the backup ran with, as the Python command
// records them.
type BackupOptions struct {
	IncludeFiles bool           `json:"include_files"`
	SkipDB       bool           `json:"skip_db"`
	Compress     bool           `json:"compress"`
	Models       ModelSelection `json:"models"`
}

// ModelSelection is backup_options.models: the string "all", or a list of
// model labels. No labels means all models.
type ModelSelection struct {
	Labels []string
}

// All reports whether the selection is every model.
func (s ModelSelection) All() bool { return len(s.Labels) == 0 }

// MarshalJSON writes "all" or the list of labels.
func (s ModelSelection) MarshalJSON() ([]byte, error) {
	if s.All() {
		return []byte(`"all"`), nil
	}
	return json.Marshal(s.Labels)
}

// UnmarshalJSON reads "all", null (all) or a list of labels.
func (s *ModelSelection) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		s.Labels = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		if str != "all" {
			return fmt.Errorf("models: want \"all\" or a list of labels, got %q", str)
		}
		s.Labels = nil
		return nil
	}
	var labels []string
	if err := json.Unmarshal(b, &labels); err != nil {
		return fmt.Errorf("models: want \"all\" or a list of labels: %w", err)
	}
	for i, l := range labels {
		if l == "" {
			return fmt.Errorf("models[%d]: empty label", i)
		}
	}
	s.Labels = labels
	return nil
}

// ModelEntry describes one fixture file of the backup.
type ModelEntry struct {
	Label  string `json:"label"`  // "books.Book"
	File   string `json:"file"`   // "db_books_book.json", relative to the backup folder
	Rows   int64  `json:"rows"`   // objects in the fixture
	SHA256 string `json:"sha256"` // hex sha256 of the file
	// Bytes is the file's size; 0 in metadata written before it was recorded. An archive's
	// reader refuses a fixture entry larger than this before writing it.
	Bytes int64 `json:"bytes,omitempty"`
}

// NamesEscaped is FilesSummary.NameEncoding of a backup whose files/ hold each storage file
// under storage.EscapeKey of its name (a backup written to S3, whose keys must be UTF-8): a
// restore takes the names back with storage.UnescapeKey. Without it files/ hold the names'
// own bytes.
const NamesEscaped = "percent"

// FilesSummary describes the storage files of the backup, under files/.
type FilesSummary struct {
	Count    int64    `json:"count"`
	Bytes    int64    `json:"bytes"`
	Prefixes []string `json:"prefixes"` // storage prefixes copied: "content/", ...
	// NameEncoding is "" (files/ holds the names as they are) or NamesEscaped.
	NameEncoding string `json:"name_encoding,omitempty"`
	// Skipped counts, by kind ("symlink", "fifo", "socket", "char device", ...), the entries
	// of the storage that were not backed up because they are not regular files; the
	// warnings name each of them.
	Skipped map[string]int64 `json:"skipped,omitempty"`
	// ChangedDuringBackup lists the files (backup paths, "files/…") that changed while they
	// were read, on a second read too: their copies may be torn.
	ChangedDuringBackup []string `json:"changed_during_backup,omitempty"`
	// Modes records the platform files' permissions, which the backup's own copies (0600)
	// do not keep: each mode (octal, "0640") but DefaultMode lists its files (backup paths).
	// Without DefaultMode (an older backup), each copy's own permissions are the record.
	DefaultMode string              `json:"default_mode,omitempty"`
	Modes       map[string][]string `json:"modes,omitempty"`
	// Folders records the local storage's empty folders and those with permissions of their
	// own, which its files do not bring back (nil: none, or an older backup).
	Folders *FolderSummary `json:"folders,omitempty"`
	// Index is the name of the backup's file index (FileIndex), "" in older backups and in
	// self-indexed ones.
	Index string `json:"index,omitempty"`
	// SelfIndexed says the backup has no file index by design: a local, unencrypted folder
	// backed up from a local folder, whose copies kept their source's size and modification
	// time. The next backup compares the source's with its copies' own, their sums being in
	// SHA256SUMS and their keys their paths under files/ (NameEncoding).
	SelfIndexed bool `json:"self_indexed,omitempty"`
	// Store is where the files' content is: "" under files/ in the backup itself,
	// StoreObjects in the destination's content-addressed object store (ObjectKey).
	Store string `json:"store,omitempty"`
	// Base names the earlier backup whose unchanged files this one reused ("" for a full
	// backup); New and Reused count the files stored by this backup and those reused.
	Base   string    `json:"base,omitempty"`
	New    FileCount `json:"new"`
	Reused FileCount `json:"reused"`
}

// FileCount is a number of files and their bytes.
type FileCount struct {
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
}

// DefaultFileMode is the permissions most platform files have, recorded as
// FilesSummary.DefaultMode; only the files with others are listed.
const DefaultFileMode fs.FileMode = 0o644

// modeIndex inverts Modes: backup path → permissions.
func (f *FilesSummary) modeIndex() map[string]fs.FileMode {
	out := map[string]fs.FileMode{}
	for m, paths := range f.Modes {
		mode, ok := parseMode(m)
		if !ok {
			continue
		}
		for _, p := range paths {
			out[p] = mode
		}
	}
	return out
}

// RecordedModes returns a function giving the permissions recorded for a backup path, as
// ModeOf does, looking them up in an index built once.
func (f *FilesSummary) RecordedModes() func(p string) (fs.FileMode, bool) {
	def, ok := parseMode(f.DefaultMode)
	if f.DefaultMode == "" || !ok {
		return func(string) (fs.FileMode, bool) { return 0, false }
	}
	idx := f.modeIndex()
	return func(p string) (fs.FileMode, bool) {
		if m, ok := idx[p]; ok {
			return m, true
		}
		return def, true
	}
}

// RecordMode notes the permissions of the file at backup path p.
func (f *FilesSummary) RecordMode(p string, mode fs.FileMode) {
	f.DefaultMode = FormatMode(DefaultFileMode)
	if mode = mode.Perm(); mode == 0 || mode == DefaultFileMode {
		return
	}
	if f.Modes == nil {
		f.Modes = map[string][]string{}
	}
	k := FormatMode(mode)
	f.Modes[k] = append(f.Modes[k], p)
}

// FormatMode writes permissions as metadata records them: "0640".
func FormatMode(m fs.FileMode) string { return fmt.Sprintf("%04o", uint32(m.Perm())) }

// checkModes refuses recorded permissions a restore could not give back: a default or a key
// of modes that is no octal mode of at most 0777 would otherwise leave each file it covers
// with its copy's 0600, silently.
func (f *FilesSummary) checkModes() error {
	if _, ok := parseMode(f.DefaultMode); f.DefaultMode != "" && !ok {
		return fmt.Errorf("files.default_mode %q: want an octal mode from 0000 to 0777", f.DefaultMode)
	}
	for k, paths := range f.Modes {
		if _, ok := parseMode(k); !ok {
			return fmt.Errorf("files.modes: key %q: want an octal mode from 0000 to 0777", k)
		}
		if f.DefaultMode == "" && len(paths) > 0 {
			return fmt.Errorf("files.modes: %s lists files but files.default_mode is missing", k)
		}
	}
	return nil
}

func parseMode(s string) (fs.FileMode, bool) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, false
	}
	return fs.FileMode(v), true
}

// metadataJSON is Metadata on the wire. Its BackupTimestamp, being shallower
// than the embedded fields, is the one encoding/json uses.
type metadataJSON struct {
	BackupTimestamp string `json:"backup_timestamp"`
	*metadataFields
}

type metadataFields Metadata

// pythonISO is datetime.isoformat() of a naive datetime, without fraction.
const pythonISO = "2006-01-02T15:04:05"

// FormatTimestamp formats t as Python's naive datetime.isoformat() does:
// "2024-12-01T14:30:22.123456", or without fraction when the microseconds
// are 0. t is formatted in its own location, without offset.
func FormatTimestamp(t time.Time) string {
	s := t.Format(pythonISO)
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s
}

// ParseTimestamp parses a datetime.isoformat() string. A naive one (no
// offset, as the Python command writes) is read in loc (time.Local if nil).
func ParseTimestamp(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.Local
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// The layout has no fraction but time.Parse accepts one after the seconds.
	t, err := time.ParseInLocation(pythonISO, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("backup_timestamp %q: not an ISO 8601 date and time", s)
	}
	return t, nil
}

// Marshal returns the metadata as indented JSON with a final newline.
// A zero FormatVersion is written as FormatVersion; nil lists as [].
func (m *Metadata) Marshal() ([]byte, error) {
	if m.BackupTimestamp.IsZero() {
		return nil, errors.New("marshal metadata: backup_timestamp is not set")
	}
	c := *m
	if c.FormatVersion == 0 {
		c.FormatVersion = FormatVersion
	}
	if c.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("marshal metadata: format_version %d: this tool writes %d", c.FormatVersion, FormatVersion)
	}
	if c.Models == nil {
		c.Models = []ModelEntry{}
	}
	if c.Warnings == nil {
		c.Warnings = []string{}
	}
	if c.Files.Prefixes == nil {
		c.Files.Prefixes = []string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	w := metadataJSON{BackupTimestamp: FormatTimestamp(c.BackupTimestamp), metadataFields: (*metadataFields)(&c)}
	if err := enc.Encode(&w); err != nil {
		return nil, fmt.Errorf("marshal metadata: %w", err)
	}
	return buf.Bytes(), nil
}

// MaxMetadataSize bounds what ParseMetadata accepts, and what a reader of a backup's metadata
// or sidecar reads: real metadata is a few KiB, even with thousands of warnings.
const MaxMetadataSize = 16 << 20

// ParseMetadata parses backup_metadata.json, written by this tool or by the
// Python command (FormatVersion 0). Unknown keys are ignored, so that newer
// minor additions still read; a format_version newer than FormatVersion is
// an error. The data is untrusted: fixture file names are checked to be
// plain names inside the backup folder.
func ParseMetadata(data []byte) (*Metadata, error) {
	if len(data) > MaxMetadataSize {
		return nil, fmt.Errorf("parse metadata: %d bytes is too large", len(data))
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("parse metadata: not a JSON object")
	}
	// Check the version first, so that a future format fails with a clear
	// message rather than with a type error on a changed key.
	var probe struct {
		FormatVersion *json.RawMessage `json:"format_version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("parse metadata: %w", err)
	}
	if probe.FormatVersion != nil {
		var v int
		if err := json.Unmarshal(*probe.FormatVersion, &v); err != nil {
			return nil, fmt.Errorf("parse metadata: format_version %s: not an integer", *probe.FormatVersion)
		}
		if v < 1 || v > FormatVersion {
			return nil, fmt.Errorf("parse metadata: unsupported format_version %d (this tool reads 0 to %d)", v, FormatVersion)
		}
	}
	m := new(Metadata)
	w := metadataJSON{metadataFields: (*metadataFields)(m)}
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("parse metadata: %w", err)
	}
	if w.BackupTimestamp == "" {
		return nil, errors.New("parse metadata: backup_timestamp is missing")
	}
	t, err := ParseTimestamp(w.BackupTimestamp, nil)
	if err != nil {
		return nil, fmt.Errorf("parse metadata: %w", err)
	}
	m.BackupTimestamp = t
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("parse metadata: %w", err)
	}
	return m, nil
}

// WrittenByTool reports whether the metadata says this tool wrote the backup: a format
// version, a manifest checksum, per-model checksums, a run id or a tool version. Such a backup
// must have a SHA256SUMS that matches manifest_sha256; only metadata with none of these
// (written by the Python command) may be restored without checksums.
func (m *Metadata) WrittenByTool() bool {
	if m.FormatVersion >= 1 || m.ManifestSHA256 != "" || m.RunID != "" || m.ToolVersion != "" {
		return true
	}
	for _, e := range m.Models {
		if e.SHA256 != "" || e.Bytes != 0 {
			return true
		}
	}
	return false
}

// check validates what a reader of the backup relies on.
func (m *Metadata) check() error {
	if m.FormatVersion >= 1 && m.Models == nil {
		// This tool always writes the list ([] for none): without it a restore would take
		// every fixture it finds, as for a Python backup, where verify finds none listed.
		return errors.New("models: missing or null (a backup this tool wrote lists its fixtures, [] for none)")
	}
	seen := make(map[string]bool, len(m.Models))
	for i, e := range m.Models {
		if e.Label == "" {
			return fmt.Errorf("models[%d]: empty label", i)
		}
		if err := checkFixtureName(e.File); err != nil {
			return fmt.Errorf("models[%d] (%s): %w", i, e.Label, err)
		}
		if seen[e.File] {
			return fmt.Errorf("models[%d] (%s): file %q listed twice", i, e.Label, e.File)
		}
		seen[e.File] = true
		if e.Rows < 0 {
			return fmt.Errorf("models[%d] (%s): negative rows %d", i, e.Label, e.Rows)
		}
		if e.Bytes < 0 {
			return fmt.Errorf("models[%d] (%s): negative bytes %d", i, e.Label, e.Bytes)
		}
		if e.SHA256 != "" && !isHexSHA256(e.SHA256) {
			return fmt.Errorf("models[%d] (%s): sha256 %q is not 64 hex digits", i, e.Label, e.SHA256)
		}
	}
	if m.Files.Count < 0 || m.Files.Bytes < 0 {
		return fmt.Errorf("files: negative count %d or bytes %d", m.Files.Count, m.Files.Bytes)
	}
	if e := m.Files.NameEncoding; e != "" && e != NamesEscaped {
		return fmt.Errorf("files.name_encoding %q: this tool knows only %q", e, NamesEscaped)
	}
	if err := m.Files.checkModes(); err != nil {
		return err
	}
	if err := m.Files.Folders.checkFolders(); err != nil {
		return err
	}
	if m.ManifestSHA256 != "" && !isHexSHA256(m.ManifestSHA256) {
		return fmt.Errorf("manifest_sha256 %q is not 64 hex digits", m.ManifestSHA256)
	}
	if m.Workers < 0 {
		return fmt.Errorf("workers: negative %d", m.Workers)
	}
	if m.FixtureIndent < 0 {
		return fmt.Errorf("fixture_indent: negative %d", m.FixtureIndent)
	}
	return nil
}

// checkFixtureName accepts a plain file name that stays in the backup
// folder and is safe to print in restore.sh.
func checkFixtureName(name string) error {
	if name == "" {
		return errors.New("empty file name")
	}
	if name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return fmt.Errorf("file %q: not a plain file name", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
		if !ok {
			return fmt.Errorf("file %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
