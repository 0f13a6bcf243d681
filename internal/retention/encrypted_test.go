package retention

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// encryptedDestination writes encrypted archives: two complete (archive and sidecar), one
// older without its sidecar (its publication stopped before the end), and a sidecar whose
// archive is gone.
func encryptedDestination(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	fake := []byte("age-encryption.org/v1\n-> X25519 not really\n")
	side := func(s string) []byte {
		m, err := layout.ParseMetadata(metadataJSON(t, ts(s), layout.StatusComplete, 4))
		if err != nil {
			t.Fatal(err)
		}
		m.Encryption = &layout.Encryption{Format: "age", Mode: "recipients", Recipients: []string{"age1example"}}
		m.Archive = &layout.ArchiveInfo{SHA256: strings.Repeat("a", 64), Bytes: int64(len(fake))}
		data, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	writeTree(t, dir, map[string][]byte{
		"backup_20240630_020000.tar.gz.age":       fake,
		"backup_20240630_020000.tar.gz.age.json":  side("20240630_020000"),
		"backup_20240629_020000.tar.zst.age":      fake,
		"backup_20240629_020000.tar.zst.age.json": side("20240629_020000"),
		"backup_20240610_020000.tar.gz.age":       fake,
		"backup_20240605_020000.tar.age.json":     side("20240605_020000"),
	}, ts("20240630_030000"))
	return dir
}

// An encrypted archive is listed with its sidecar (size, metadata) and complete only with
// one; prune removes it with its sidecar, and --prune-incomplete an archive without sidecar
// and a sidecar without archive.
func TestEncryptedArchivesListAndPrune(t *testing.T) {
	ctx := context.Background()
	dir := encryptedDestination(t)
	d, err := OpenDestination(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bs, err := d.List(ctx, ListOptions{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	want := []listed{
		{"backup_20240630_020000.tar.gz.age", KindArchive, StatusComplete, 4},
		{"backup_20240629_020000.tar.zst.age", KindArchive, StatusComplete, 4},
		{"backup_20240610_020000.tar.gz.age", KindArchive, StatusIncomplete, 0},
		{"backup_20240605_020000.tar.age", KindArchive, StatusIncomplete, 0},
	}
	if got := summary(bs); !slices.Equal(got, want) {
		t.Fatalf("listed:\n%v\nwant:\n%v", got, want)
	}
	fi, _ := os.Stat(dir + "/backup_20240630_020000.tar.gz.age")
	si, _ := os.Stat(dir + "/backup_20240630_020000.tar.gz.age.json")
	if b := bs[0]; !b.Encrypted || b.Objects != 2 || b.Size != fi.Size()+si.Size() || b.RunID != "run-0630" {
		t.Fatalf("complete encrypted archive: %+v", b)
	}
	if !strings.Contains(bs[2].Problem, "no sidecar") || !strings.Contains(bs[3].Problem, "without its archive") {
		t.Fatalf("problems %q, %q", bs[2].Problem, bs[3].Problem)
	}
	res, err := Prune(ctx, d, Policy{Last: 1}, PruneOptions{
		DecideOptions: DecideOptions{Now: now, PruneIncomplete: true}, ListOptions: ListOptions{Location: time.UTC},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRemoved := []string{"backup_20240629_020000.tar.zst.age", "backup_20240610_020000.tar.gz.age", "backup_20240605_020000.tar.age"}
	if !slices.Equal(res.Removed, wantRemoved) {
		t.Fatalf("removed %v, want %v", res.Removed, wantRemoved)
	}
	if got, want := entries(t, dir), []string{"backup_20240630_020000.tar.gz.age", "backup_20240630_020000.tar.gz.age.json"}; !slices.Equal(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
}
