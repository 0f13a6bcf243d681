package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupCompressionFlag: --compression picks the archive's kind and its extension (and
// implies --compress), with files and without (an archive of no parts), and verify reads it.
func TestBackupCompressionFlag(t *testing.T) {
	dir := sitePlatform(t)
	tests := []struct {
		line, backupDir, ext string
	}{
		{"backup --compression zstd --backup-dir bz", "bz", ".tar.zst"},
		{"backup --compression none --skip-files --backup-dir bn", "bn", ".tar"},
		{"backup --compress --compression gzip --skip-db --backup-dir bg", "bg", ".tar.gz"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if code, out := cli(t, dir, strings.Fields(tt.line)...); code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			b := onlyBackup(t, filepath.Join(dir, tt.backupDir))
			if !strings.HasSuffix(b, tt.ext) || strings.HasSuffix(strings.TrimSuffix(b, tt.ext), ".tar") {
				t.Fatalf("backup %s, want a %s", b, tt.ext)
			}
			if code, out := cli(t, dir, "verify", b); code != 0 {
				t.Fatalf("verify %s: exit %d\n%s", b, code, out)
			}
		})
	}
}
