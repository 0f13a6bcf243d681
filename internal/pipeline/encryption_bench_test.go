package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// BenchmarkEncryption compares a backup (and its restore) encrypted to an age recipient with
// the same backup unencrypted, as a folder and as gzip and zstd archives, on a demo platform
// of 20 books (about 90 MB of files) (by hand, not in CI:
// go test ./internal/pipeline -run '^$' -bench Encryption -benchtime 3x).
// The backup's and the restore's time per run are reported as backup-s/op and restore-s/op,
// and the process's CPU time in each as backup-cpu-s/op and restore-cpu-s/op.
// WNB_BENCH_FILE_BYTES=1000000 runs it on 2 books of 1 MB files instead;
// WNB_BENCH_DROP_CACHES=1 (as root) drops the page cache before each backup and restore.
func BenchmarkEncryption(b *testing.B) {
	opts := demo.DefaultOptions()
	opts.Books, opts.ChaptersPerBook, opts.MediaPerChapter, opts.FileBytes = 20, 25, 2, 60_000
	if n, err := strconv.Atoi(os.Getenv("WNB_BENCH_FILE_BYTES")); err == nil && n > 0 {
		// Fewer, larger files: what the per-file cost of age (two X25519 operations to
		// encrypt, one to decrypt) weighs against the per-byte cost.
		opts.Books, opts.FileBytes = 2, n
	}
	dir := b.TempDir()
	p := platformFixture{dbURL: "sqlite:///" + filepath.Join(dir, "db.sqlite3"), storage: filepath.Join(dir, "media")}
	if _, err := demo.Fill(context.Background(), p.dbURL, p.storage, opts); err != nil {
		b.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	rc, err := encryption.ParseRecipients([]string{id.Recipient().String()}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	ids := encryption.IdentitiesOf(id)
	quiet := slog.New(slog.DiscardHandler)
	for _, comp := range []archive.Compression{"folder", archive.Gzip, archive.Zstd} {
		for _, encrypted := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/encrypted=%v", comp, encrypted), func(b *testing.B) {
				s, err := pipeline.Start(context.Background(), pipeline.Config{Workers: 2, DatabaseURL: p.dbURL, StorageURL: p.storage, Queue: queue.Config{}, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				o := coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, Workers: 2, Full: true}
				if comp != "folder" {
					o.Compress, o.Compression = true, string(comp)
				}
				ro := coordinator.RestoreOptions{}
				if encrypted {
					o.Recipients, ro.Identities = rc, ids
				}
				var backup, restore, backupCPU, restoreCPU time.Duration
				for range b.N {
					o.BackupDir = b.TempDir()
					dropCaches(b)
					t0, c0 := time.Now(), cpuTime()
					rep, err := s.Coordinator.Backup(context.Background(), o)
					if err != nil {
						b.Fatal(err)
					}
					backup += time.Since(t0)
					backupCPU += cpuTime() - c0
					target := benchTarget(b)
					ro.Source, ro.DatabaseURL, ro.StorageURL, ro.TempDir = rep.Path, target.dbURL, target.storage, b.TempDir()
					rs, err := pipeline.Start(context.Background(), pipeline.Config{Workers: 2, DatabaseURL: target.dbURL, StorageURL: target.storage, Logger: quiet, Identities: ro.Identities})
					if err != nil {
						b.Fatal(err)
					}
					dropCaches(b)
					t0, c0 = time.Now(), cpuTime()
					_, err = rs.Coordinator.Restore(context.Background(), ro)
					restore += time.Since(t0)
					restoreCPU += cpuTime() - c0
					rs.Close()
					if err != nil {
						b.Fatal(err)
					}
					os.RemoveAll(o.BackupDir)
				}
				b.ReportMetric(backup.Seconds()/float64(b.N), "backup-s/op")
				b.ReportMetric(restore.Seconds()/float64(b.N), "restore-s/op")
				b.ReportMetric(backupCPU.Seconds()/float64(b.N), "backup-cpu-s/op")
				b.ReportMetric(restoreCPU.Seconds()/float64(b.N), "restore-cpu-s/op")
			})
		}
	}
}

// dropCaches empties the kernel's page cache when WNB_BENCH_DROP_CACHES is set (as root), so
// that the next phase reads its files from the disk: the disk-bound case.
func dropCaches(b *testing.B) {
	b.Helper()
	if os.Getenv("WNB_BENCH_DROP_CACHES") == "" {
		return
	}
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200); err != nil {
		b.Fatalf("WNB_BENCH_DROP_CACHES: %v", err)
	}
}

// cpuTime is the CPU time (user and system) the process has used: on a machine that others
// load too, it compares two runs where their wall times do not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTarget is an empty SQLite platform with the schema.
func benchTarget(b *testing.B) platformFixture {
	b.Helper()
	dir := b.TempDir()
	url := "sqlite:///" + filepath.Join(dir, "target.sqlite3")
	db, err := database.Create(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.ApplySchema(context.Background()); err != nil {
		b.Fatal(err)
	}
	return platformFixture{dbURL: url, storage: filepath.Join(dir, "media")}
}
