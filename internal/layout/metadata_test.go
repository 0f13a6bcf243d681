package layout

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleMetadata() *Metadata {
	return &Metadata{
		BackupTimestamp: time.Date(2024, 12, 1, 14, 30, 22, 123456789, time.Local),
		DjangoVersion:   DjangoVersion,
		BackupOptions: BackupOptions{
			IncludeFiles: true,
			Models:       ModelSelection{Labels: []string{"books.Book", "books.Chapter"}},
		},
		StorageBackend: StorageFileSystem,
		DatabaseEngine: EnginePostgres,
		ToolVersion:    "0.1.0",
		RunID:          "01JEXAMPLE",
		Status:         StatusComplete,
		Models: []ModelEntry{
			{Label: "books.Book", File: "db_books_book.json", Rows: 2, SHA256: strings.Repeat("ab", 32)},
			{Label: "books.Chapter", File: "db_books_chapter.json", Rows: 6, SHA256: strings.Repeat("cd", 32)},
		},
		Files:           FilesSummary{Count: 9, Bytes: 12345, Prefixes: []string{"content/", "images/", "media/"}},
		Warnings:        []string{"storage: 1 file changed while copied: content/1/1.json"},
		DurationSeconds: 1.25,
		Workers:         4,
		ManifestSHA256:  strings.Repeat("ef", 32),
		TraceID:         "4bf92f3577b34da6a3ce929d0e0e4736",
		Database:        "postgres://webnovel:xxxxx@db:5432/webnovel",
		Storage:         "/srv/media",
		FixtureIndent:   2,
	}
}

func TestMetadataGolden(t *testing.T) {
	data, err := sampleMetadata().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "metadata.golden.json", data)
}

func TestMetadataKeys(t *testing.T) {
	data, err := sampleMetadata().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	// The Python command's keys, then ours.
	for _, k := range []string{"backup_timestamp", "django_version", "backup_options", "storage_backend",
		"database_engine", "format_version", "tool_version", "run_id", "status", "models", "files",
		"warnings", "duration_seconds", "workers", "manifest_sha256", "trace_id", "database",
		"storage", "fixture_indent"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
	if got := string(raw["backup_timestamp"]); got != `"2024-12-01T14:30:22.123456"` {
		t.Errorf("backup_timestamp = %s", got)
	}
	if got := string(raw["format_version"]); got != "1" {
		t.Errorf("format_version = %s, want 1", got)
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	m := sampleMetadata()
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	want := *m
	want.FormatVersion = FormatVersion
	want.BackupTimestamp = m.BackupTimestamp.Truncate(time.Microsecond)
	if !got.BackupTimestamp.Equal(want.BackupTimestamp) {
		t.Errorf("timestamp = %v, want %v", got.BackupTimestamp, want.BackupTimestamp)
	}
	got.BackupTimestamp = want.BackupTimestamp
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *got, want)
	}
}

func TestMetadataMarshalDefaults(t *testing.T) {
	m := &Metadata{BackupTimestamp: time.Date(2024, 12, 1, 14, 30, 22, 0, time.UTC)}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"backup_timestamp": "2024-12-01T14:30:22",`, // no fraction, as isoformat()
		`"models": "all"`,
		`"models": [],`,
		`"warnings": [],`,
		`"prefixes": []`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("marshal lacks %s:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "trace_id") {
		t.Errorf("empty trace_id is written")
	}
	if _, err := (&Metadata{}).Marshal(); err == nil {
		t.Error("Marshal without timestamp: no error")
	}
	if _, err := (&Metadata{BackupTimestamp: time.Now(), FormatVersion: 9}).Marshal(); err == nil {
		t.Error("Marshal of format 9: no error")
	}
}

func TestParsePythonMetadata(t *testing.T) {
	data, err := os.ReadFile("testdata/python_metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.FormatVersion != 0 {
		t.Errorf("FormatVersion = %d, want 0", m.FormatVersion)
	}
	want := time.Date(2024, 12, 1, 14, 30, 22, 123456000, time.Local)
	if !m.BackupTimestamp.Equal(want) {
		t.Errorf("BackupTimestamp = %v, want %v", m.BackupTimestamp, want)
	}
	if m.DjangoVersion != "4.2.0" || !m.BackupOptions.IncludeFiles || m.BackupOptions.SkipDB ||
		m.BackupOptions.Compress || !m.BackupOptions.Models.All() ||
		m.StorageBackend != StorageFileSystem || m.DatabaseEngine != EngineSQLite {
		t.Errorf("parsed %+v", m)
	}
}

func TestParseMetadataModelList(t *testing.T) {
	m, err := ParseMetadata([]byte(`{"backup_timestamp": "2024-12-01T14:30:22",
		"backup_options": {"models": ["books.Book", "accounts.User"]}, "future_key": {"x": 1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.BackupOptions.Models.Labels; !reflect.DeepEqual(got, []string{"books.Book", "accounts.User"}) {
		t.Errorf("models = %v", got)
	}
}

func TestParseMetadataErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", ``, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"truncated", `{"backup_timestamp": "2024-12-01T14:30:22"`, "unexpected end"},
		{"future version", `{"format_version": 2, "backup_timestamp": "2024-12-01T14:30:22"}`, "unsupported format_version 2"},
		{"version zero", `{"format_version": 0, "backup_timestamp": "2024-12-01T14:30:22"}`, "unsupported format_version 0"},
		{"version string", `{"format_version": "1", "backup_timestamp": "2024-12-01T14:30:22"}`, "format_version \"1\": not an integer"},
		{"no timestamp", `{"format_version": 1}`, "backup_timestamp is missing"},
		{"bad timestamp", `{"backup_timestamp": "yesterday"}`, `backup_timestamp "yesterday"`},
		{"models string", `{"backup_timestamp": "2024-12-01T14:30:22", "backup_options": {"models": "some"}}`, `want "all"`},
		{"models number", `{"backup_timestamp": "2024-12-01T14:30:22", "backup_options": {"models": 3}}`, `want "all"`},
		{"rows type", `{"backup_timestamp": "2024-12-01T14:30:22", "models": [{"label": "a.b", "file": "db_a_b.json", "rows": "2"}]}`, "rows"},
		{"file escapes", `{"backup_timestamp": "2024-12-01T14:30:22", "models": [{"label": "a.b", "file": "../etc/passwd"}]}`, `file "../etc/passwd"`},
		{"file hidden", `{"backup_timestamp": "2024-12-01T14:30:22", "models": [{"label": "a.b", "file": ".x"}]}`, "not a plain file name"},
		{"file quote", `{"backup_timestamp": "2024-12-01T14:30:22", "models": [{"label": "a.b", "file": "a'b.json"}]}`, "only letters"},
		{"file twice", `{"backup_timestamp": "2024-12-01T14:30:22", "models": [{"label": "a.b", "file": "x.json"}, {"label": "a.c", "file": "x.json"}]}`, "listed twice"},
		{"no label", `{"backup_timestamp": "2024-12-01T14:30:22", "models": [{"file": "x.json"}]}`, "empty label"},
		{"bad sha", `{"backup_timestamp": "2024-12-01T14:30:22", "models": [{"label": "a.b", "file": "x.json", "sha256": "zz"}]}`, "not 64 hex"},
		{"negative rows", `{"backup_timestamp": "2024-12-01T14:30:22", "models": [{"label": "a.b", "file": "x.json", "rows": -1}]}`, "negative rows"},
		{"negative files", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"count": -1}}`, "negative count"},
		{"trailing", `{"backup_timestamp": "2024-12-01T14:30:22"} {}`, "invalid character"},
		{"models null", `{"format_version": 1, "backup_timestamp": "2024-12-01T14:30:22", "models": null}`, "models: missing or null"},
		{"models missing", `{"format_version": 1, "backup_timestamp": "2024-12-01T14:30:22"}`, "models: missing or null"},
		{"default mode not octal", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"default_mode": "abc"}}`, `files.default_mode "abc"`},
		{"default mode too wide", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"default_mode": "4777"}}`, `files.default_mode "4777"`},
		{"mode key not octal", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"default_mode": "0644", "modes": {"rw-": ["files/a"]}}}`, `key "rw-"`},
		{"modes without default", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"modes": {"0600": ["files/a"]}}}`, "default_mode is missing"},
		{"folder escapes", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"folders": {"empty": ["../etc/"]}}}`, `files.folders.empty[0]: path "../etc"`},
		{"folder absolute", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"folders": {"modes": {"0700": ["/root/"]}}}}`, `files.folders.modes["0700"][0]: path "/root" is absolute`},
		{"folder not a folder", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"folders": {"empty": ["a/b"]}}}`, `folder "a/b" does not end in /`},
		{"folder root", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"folders": {"empty": ["/"]}}}`, `files.folders.empty[0]: empty path`},
		{"folder mode not octal", `{"backup_timestamp": "2024-12-01T14:30:22", "files": {"folders": {"modes": {"4755": ["a/"]}}}}`, `files.folders.modes: key "4755"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMetadata([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestTimestamp(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2024, 12, 1, 14, 30, 22, 0, time.UTC), "2024-12-01T14:30:22"},
		{time.Date(2024, 12, 1, 14, 30, 22, 999, time.UTC), "2024-12-01T14:30:22"}, // sub-microsecond dropped
		{time.Date(2024, 12, 1, 14, 30, 22, 1000, time.UTC), "2024-12-01T14:30:22.000001"},
		{time.Date(2024, 12, 1, 14, 30, 22, 123456789, time.UTC), "2024-12-01T14:30:22.123456"},
	}
	for _, tt := range tests {
		if got := FormatTimestamp(tt.t); got != tt.want {
			t.Errorf("FormatTimestamp(%v) = %q, want %q", tt.t, got, tt.want)
		}
		back, err := ParseTimestamp(tt.want, time.UTC)
		if err != nil || !back.Equal(tt.t.Truncate(time.Microsecond)) {
			t.Errorf("ParseTimestamp(%q) = %v, %v", tt.want, back, err)
		}
	}
	// An aware isoformat() keeps its offset.
	got, err := ParseTimestamp("2024-12-01T14:30:22.5+02:00", time.UTC)
	if err != nil || !got.Equal(time.Date(2024, 12, 1, 12, 30, 22, 5e8, time.UTC)) {
		t.Errorf("aware timestamp = %v, %v", got, err)
	}
}

func FuzzParseMetadata(f *testing.F) {
	if data, err := sampleMetadata().Marshal(); err == nil {
		f.Add(data)
	}
	if data, err := os.ReadFile("testdata/python_metadata.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"backup_timestamp": "2024-12-01T14:30:22", "backup_options": {"models": ["a.b"]}}`))
	f.Add([]byte(`{"format_version": 7}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadata(data)
		if err != nil {
			return
		}
		for _, e := range m.Models {
			if strings.ContainsAny(e.File, "/\\'\"$`\n") || strings.HasPrefix(e.File, ".") {
				t.Fatalf("unsafe fixture name accepted: %q", e.File)
			}
		}
		// What parses marshals, and parses again to the same thing.
		if m.FormatVersion == 0 {
			return // Marshal upgrades Python metadata; not a round trip
		}
		out, err := m.Marshal()
		if err != nil {
			if m.BackupTimestamp.IsZero() {
				return
			}
			t.Fatalf("Marshal of parsed metadata: %v", err)
		}
		if _, err := ParseMetadata(out); err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
	})
}
