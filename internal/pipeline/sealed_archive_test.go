package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/retention"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/internal/verify"
	"github.com/webnovel/webnovel-backup/storage"
)

// sealKey is a fresh age key: its key file (as age-keygen writes it), recipients and
// identities.
type sealKey struct {
	file       string
	recipients *encryption.Recipients
	identities *encryption.Identities
}

func newSealKey(t *testing.T) sealKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(file, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := encryption.ParseRecipients([]string{id.Recipient().String()}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := encryption.ReadIdentityFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return sealKey{file: file, recipients: rc, identities: ids}
}

// stockAgeTarExtract decrypts an archive with the system's age (age -d -i key.txt) and
// extracts it with the system's tar, returning the folder it extracted into.
func stockAgeTarExtract(t *testing.T, file, keyFile string, c archive.Compression) string {
	t.Helper()
	if _, err := exec.LookPath("age"); err != nil {
		t.Fatal("the age command is not installed (Debian's age package)")
	}
	plain := filepath.Join(t.TempDir(), "archive"+c.Ext())
	if out, err := exec.Command("age", "-d", "-i", keyFile, "-o", plain, file).CombinedOutput(); err != nil {
		t.Fatalf("age -d -i %s %s: %v\n%s", keyFile, file, err, out)
	}
	return stockTarExtract(t, plain, c)
}

// sidecarOf reads an encrypted archive's sidecar (a local file) and checks that it records the
// archive's bytes.
func sidecarOf(t *testing.T, file string) *layout.Metadata {
	t.Helper()
	data, err := os.ReadFile(layout.SidecarName(file))
	if err != nil {
		t.Fatalf("sidecar: %v", err)
	}
	m, err := layout.ParseMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(stored)
	if m.Archive == nil || m.Archive.SHA256 != hex.EncodeToString(sum[:]) || m.Archive.Bytes != int64(len(stored)) {
		t.Fatalf("sidecar archive %+v, the file has %d bytes, sha256 %x", m.Archive, len(stored), sum)
	}
	if m.Encryption == nil || m.Encryption.Format != encryption.Format {
		t.Fatalf("sidecar encryption %+v", m.Encryption)
	}
	return m
}

// secrets are values of the demo platform that must appear nowhere in an encrypted backup's
// bytes: the start of every password hash and of every e-mail address's domain. The
// plaintext fixtures hold them (assertHasSecrets).
var secrets = [][]byte{[]byte("pbkdf2_sha256$260000$"), []byte("@example.com")}

// assertHasSecrets checks that the decrypted backup dir holds the secrets: their absence from
// the encrypted bytes then means something.
func assertHasSecrets(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "db_accounts_user.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if !bytes.Contains(data, s) {
			t.Fatalf("the users' fixture has no %q", s)
		}
	}
}

// assertNoSecret fails when any file under root holds one of the secrets.
func assertNoSecret(t *testing.T, root string, secrets [][]byte) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		for _, s := range secrets {
			if bytes.Contains(data, s) {
				t.Errorf("%s holds the secret %q in the clear", p, s)
			}
		}
		return nil
	})
}

// TestEncryptedArchiveRoundTrip (issue 12 items 2, 4, 6): a compressed backup with an age
// recipient, gzip and zstd, local and on S3, is one backup_….tar.*.age file with a sidecar
// that records its bytes' sum; stock `age -d -i key.txt | tar x` opens it into exactly the
// platform's files with a SHA256SUMS that checks; no password hash or e-mail address is in
// its bytes; a restore with the identity gives back every row and file; without an identity,
// with the wrong one, or of a truncated copy, the restore is refused and nothing changed.
func TestEncryptedArchiveRoundTrip(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	addBigFiles(t, p.storage)
	key, wrong := newSealKey(t), newSealKey(t)
	s3 := s3test.Start(t, nil, "backups")
	s := startSession(t, p, 2, queue.Config{})
	for _, comp := range []archive.Compression{archive.Gzip, archive.Zstd} {
		for _, onS3 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s-s3=%v", comp, onS3), func(t *testing.T) {
				ctx := context.Background()
				dest := t.TempDir()
				if onS3 {
					dest = s3.URL("backups", string(comp), "")
				}
				rep, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{
					DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dest, Compress: true,
					Compression: string(comp), FilesPerTask: 3, ChunkRows: 50, Recipients: key.recipients,
				})
				if err != nil {
					t.Fatal(err)
				}
				where, _, _ := strings.Cut(rep.Path, "?")
				name := filepath.Base(where)
				if !strings.HasSuffix(name, comp.Ext()+layout.EncryptedExt) {
					t.Fatalf("backup path %s, want a %s%s", rep.Path, comp.Ext(), layout.EncryptedExt)
				}
				file := rep.Path
				if onS3 {
					file = downloadArchive(t, dest, name)
					side := downloadArchive(t, dest, layout.SidecarName(name))
					os.Rename(side, layout.SidecarName(file))
				}
				meta := sidecarOf(t, file)
				if meta.Encryption.Mode != encryption.ModeRecipients || strings.Join(meta.Encryption.Recipients, ",") != strings.Join(key.recipients.Public(), ",") {
					t.Fatalf("sidecar encryption %+v", meta.Encryption)
				}
				assertNoSecret(t, filepath.Dir(file), secrets)
				top, _ := layout.TrimArchiveExt(name)
				dir := filepath.Join(stockAgeTarExtract(t, file, key.file, comp), top)
				sha256sumCheck(t, dir)
				assertHasSecrets(t, dir)
				assertSameTree(t, treeFiles(t, filepath.Join(dir, layout.FilesDir)), treeFiles(t, p.storage))

				refused := []struct {
					name   string
					source string
					ids    *encryption.Identities
					want   error
					status outcome.Status
				}{
					{"no identity", rep.Path, nil, encryption.ErrNoIdentity, outcome.Usage},
					{"wrong identity", rep.Path, wrong.identities, encryption.ErrWrongKey, outcome.Refused},
					{"truncated", truncatedCopy(t, file, 100), key.identities, encryption.ErrDamaged, ""},
					{"truncated at a chunk", truncatedCopy(t, file, chunkCut(t, file)), key.identities, encryption.ErrDamaged, ""},
					{"tampered", tamperedCopy(t, file), key.identities, encryption.ErrDamaged, ""},
				}
				for _, r := range refused {
					target := emptyTarget(t, database.SQLite)
					_, err := restoreInto(t, target, coordinator.RestoreOptions{Source: r.source, Identities: r.ids})
					if !errors.Is(err, r.want) || (r.status != "" && outcome.Of(err).Status != r.status) {
						t.Fatalf("%s: restore error %v (status %s), want %v (%s)", r.name, err, outcome.Of(err).Status, r.want, r.status)
					}
					if _, err := os.Stat(target.storage); !errors.Is(err, fs.ErrNotExist) {
						t.Fatalf("%s: the refused restore wrote the target storage (%v)", r.name, err)
					}
				}
				target := emptyTarget(t, database.SQLite)
				if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path, Identities: key.identities}); err != nil {
					t.Fatal(err)
				}
				compareWithBackup(t, dir, target)
			})
		}
	}
}

// chunkCut is how many bytes to cut off an age file so that it ends right after a whole
// 64 KiB payload chunk (each stored with a 16-byte tag): a cut between chunks, which only
// the missing last-chunk flag tells from a complete file.
func chunkCut(t *testing.T, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	mac := bytes.Index(data, []byte("\n--- "))
	if mac < 0 {
		t.Fatal("no age header end")
	}
	nl := bytes.IndexByte(data[mac+1:], '\n')
	payload := mac + 1 + nl + 1 + 16 // the header, then the stream's 16-byte nonce
	const chunk = 64<<10 + 16
	full := (len(data) - payload) / chunk
	if full < 2 {
		t.Fatalf("%s is too small (%d bytes) to cut between chunks", file, len(data))
	}
	return len(data) - (payload + (full-1)*chunk)
}

// tamperedCopy is a copy of file with one bit of its middle flipped.
func tamperedCopy(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	out := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(out, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// truncatedCopy is a copy of file without its last n bytes.
func truncatedCopy(t *testing.T, file string, n int) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(out, data[:len(data)-n], 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEncryptedArchivePassphrase (issue 12 items 1, 2): with a passphrase the archive is
// encrypted to it directly (age's scrypt recipient): the stock `age -d`, given the passphrase
// on its terminal, decrypts it, and the restore opens it with the passphrase (a wrong one is
// refused).
func TestEncryptedArchivePassphrase(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("script (util-linux) is needed to give age its passphrase on a terminal")
	}
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	const passphrase = "correct horse battery staple"
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), Compress: true, Passphrase: passphrase,
	})
	if err != nil {
		t.Fatal(err)
	}
	if meta := sidecarOf(t, rep.Path); meta.Encryption.Mode != encryption.ModePassphrase {
		t.Fatalf("sidecar encryption %+v", meta.Encryption)
	}
	// age reads a passphrase from its terminal only: script gives it one, fed from stdin.
	plain := filepath.Join(t.TempDir(), "archive.tar.gz")
	cmd := exec.Command("script", "-qec", fmt.Sprintf("age -d -o %s %s", plain, rep.Path), "/dev/null")
	cmd.Stdin = strings.NewReader(passphrase + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("age -d with the passphrase: %v\n%s", err, out)
	}
	top, _ := layout.TrimArchiveExt(filepath.Base(rep.Path))
	dir := filepath.Join(stockTarExtract(t, plain, archive.Gzip), top)
	sha256sumCheck(t, dir)
	assertSameTree(t, treeFiles(t, filepath.Join(dir, layout.FilesDir)), treeFiles(t, p.storage))

	if _, err := restoreInto(t, emptyTarget(t, database.SQLite), coordinator.RestoreOptions{Source: rep.Path, Passphrase: "wrong"}); !errors.Is(err, encryption.ErrWrongKey) {
		t.Fatalf("restore with a wrong passphrase: %v", err)
	}
	target := emptyTarget(t, database.SQLite)
	if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path, Passphrase: passphrase}); err != nil {
		t.Fatal(err)
	}
	compareWithBackup(t, dir, target)
}

// TestEncryptedArchiveStagingHoldsNoPlaintext (issue 12 item 2): while an encrypted archive
// is built, no file of its staging area (a local folder, or a prefix on S3) holds a secret of
// the database (a password hash, an e-mail address) or a file's content, even uncompressed
// (--compression none): parts are age files, and so are the fixtures, exported whole or
// joined from chunks (encrypted to the run key until the publish decrypts them into the
// archive). The archive still holds the plaintext: stock `age -d | tar x` gives fixtures
// identical to an unencrypted archive's, with a SHA256SUMS that checks, and a restore gives
// every row back.
func TestEncryptedArchiveStagingHoldsNoPlaintext(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	files := treeFiles(t, p.storage)
	var known []byte
	for _, data := range files {
		if len(data) >= 64 && len(data) > len(known) {
			known = data[:64]
		}
	}
	if known == nil {
		t.Fatal("the platform has no file of 64 bytes or more")
	}
	s3 := s3test.Start(t, nil, "backups")
	s := startSession(t, p, 2, queue.Config{})
	key := newSealKey(t)
	for _, tc := range []struct {
		name      string
		chunkRows int
		onS3      bool
	}{{"whole fixtures", 0, false}, {"fixtures in chunks", 3, false}, {"fixtures in chunks on S3", 3, true}} {
		t.Run(tc.name, func(t *testing.T) {
			dest := func(what string) string {
				if tc.onS3 {
					return s3.URL("backups", strings.ReplaceAll(tc.name, " ", "-")+"/"+what, "")
				}
				return t.TempDir()
			}
			var parts, fixtures int
			defer coordinator.SetBeforeSealedPublish(func(staging string) {
				parts, fixtures = checkStagingSealed(t, staging, append(slices.Clone(secrets), known))
			})()
			o := coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dest("sealed"), Compress: true,
				Compression: string(archive.None), FilesPerTask: 5, ChunkRows: tc.chunkRows, Recipients: key.recipients}
			rep, err := s.Coordinator.Backup(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if parts < 2 || fixtures == 0 {
				t.Fatalf("%d staged parts and %d staged fixtures seen, want several", parts, fixtures)
			}
			file := localArchive(t, o.BackupDir, rep.Path)
			assertNoSecret(t, file, append(slices.Clone(secrets), known))
			o.Recipients, o.BackupDir = nil, dest("plain")
			plain, err := s.Coordinator.Backup(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			top, _ := layout.TrimArchiveExt(filepath.Base(file))
			dir := filepath.Join(stockAgeTarExtract(t, file, key.file, archive.None), top)
			plainFile := localArchive(t, o.BackupDir, plain.Path)
			plainTop, _ := layout.TrimArchiveExt(filepath.Base(plainFile))
			plainDir := filepath.Join(stockTarExtract(t, plainFile, archive.None), plainTop)
			sha256sumCheck(t, dir)
			assertHasSecrets(t, dir)
			sameFixtures(t, dir, plainDir)
			target := emptyTarget(t, database.SQLite)
			if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path, Identities: key.identities}); err != nil {
				t.Fatal(err)
			}
			compareWithBackup(t, dir, target)
		})
	}
}

// localArchive is the archive a backup reported at path in dest, downloaded if dest is on S3.
func localArchive(t *testing.T, dest, path string) string {
	t.Helper()
	if !storage.IsS3(dest) {
		return path
	}
	where, _, _ := strings.Cut(path, "?")
	return downloadArchive(t, dest, filepath.Base(where))
}

// checkStagingSealed fails when any file of the staging area (a folder or an S3 location)
// holds one of secrets, or when a staged part or fixture is not an age file; it returns how
// many of each it saw.
func checkStagingSealed(t *testing.T, staging string, secrets [][]byte) (parts, fixtures int) {
	t.Helper()
	ctx := context.Background()
	b, err := storage.Open(ctx, staging)
	if err != nil {
		t.Errorf("open the staging area: %v", err)
		return 0, 0
	}
	defer b.Close()
	var keys []string
	if err := b.Walk(ctx, "", func(o storage.Object) error { keys = append(keys, o.Key); return nil }); err != nil || len(keys) == 0 {
		t.Errorf("list the staging area: %d keys, %v", len(keys), err)
	}
	for _, k := range keys {
		rc, _, err := b.Open(ctx, k)
		if err != nil {
			t.Errorf("read staged %s: %v", k, err)
			continue
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Errorf("read staged %s: %v", k, err)
		}
		for _, s := range secrets {
			if bytes.Contains(data, s) {
				t.Errorf("staged %s holds the secret %q in the clear", k, s)
			}
		}
		part := strings.HasPrefix(k, ".wnb/parts/")
		fixture := strings.HasPrefix(k, "db_") && strings.HasSuffix(k, ".json")
		if (part || fixture) && !encryption.IsEncrypted(data) {
			t.Errorf("staged %s is not an age file", k)
		}
		if part {
			parts++
		} else if fixture {
			fixtures++
		}
	}
	return parts, fixtures
}

// sameFixtures checks that two extracted backups hold the same fixtures, byte for byte.
func sameFixtures(t *testing.T, dir, want string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(want, "db_*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures in %s (%v)", want, err)
	}
	for _, w := range names {
		wb, _ := os.ReadFile(w)
		got, err := os.ReadFile(filepath.Join(dir, filepath.Base(w)))
		if err != nil || !bytes.Equal(got, wb) {
			t.Errorf("fixture %s differs from the unencrypted backup's (%v)", filepath.Base(w), err)
		}
	}
}

// TestEncryptedArchiveVerifyListCopy (issue 12 items 2, 3, 4): without the key, verify checks
// an encrypted archive's bytes against its sidecar (a tampered, truncated or sidecar-less one
// fails), list shows it complete with the sidecar's metadata, and copy carries archive and
// sidecar to another folder and to S3 and back, byte for byte; with the key, verify decrypts
// and checks the content (a tampered ciphertext fails; a wrong key cannot run).
func TestEncryptedArchiveVerifyListCopy(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	key, wrong := newSealKey(t), newSealKey(t)
	ctx := context.Background()
	rep, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), Compress: true, Recipients: key.recipients,
	})
	if err != nil {
		t.Fatal(err)
	}
	file := rep.Path
	stored, _ := os.ReadFile(file)
	sideData, _ := os.ReadFile(layout.SidecarName(file))
	vo := verify.Options{TempDir: t.TempDir()}

	vr, err := verify.Verify(ctx, file, vo)
	if err != nil || !vr.OK || !slices.Contains(vr.Warnings, verify.WarnNotDecrypted) || vr.RunID == "" {
		t.Fatalf("verify without key: %v %+v", err, vr)
	}
	vr, err = verify.VerifyEncryptedArchive(ctx, file, key.identities, vo)
	if err != nil || !vr.OK || len(vr.Models) == 0 || vr.Files == 0 {
		t.Fatalf("verify with the key: %v %+v", err, vr)
	}
	if _, err := verify.VerifyEncryptedArchive(ctx, file, wrong.identities, vo); !errors.Is(err, encryption.ErrWrongKey) {
		t.Fatalf("verify with a wrong key: %v", err)
	}
	tampered := bytes.Clone(stored)
	tampered[len(tampered)/2] ^= 1
	for _, c := range []struct {
		name    string
		data    []byte
		sidecar bool
		ids     *encryption.Identities
	}{
		{"tampered", tampered, true, nil},
		{"tampered, decrypted", tampered, true, key.identities},
		{"truncated", stored[:len(stored)-10], true, nil},
		{"truncated, decrypted", stored[:len(stored)-10], true, key.identities},
		{"no sidecar", stored, false, nil},
	} {
		bad := filepath.Join(t.TempDir(), filepath.Base(file))
		os.WriteFile(bad, c.data, 0o600)
		if c.sidecar {
			os.WriteFile(layout.SidecarName(bad), sideData, 0o600)
		}
		vr, err := verify.VerifyEncryptedArchive(ctx, bad, c.ids, vo)
		if err != nil || vr.OK || len(vr.Problems) == 0 {
			t.Fatalf("%s: verify %v %+v, want problems", c.name, err, vr)
		}
	}

	d, err := retention.OpenDestination(ctx, filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bs, err := d.List(ctx, retention.ListOptions{})
	if err != nil || len(bs) != 1 || bs[0].Status != retention.StatusComplete || !bs[0].Encrypted || bs[0].RunID == "" || bs[0].Files == 0 {
		t.Fatalf("list: %v %+v", err, bs)
	}

	name := filepath.Base(file)
	dest := t.TempDir()
	if _, err := s.Coordinator.Copy(ctx, copyOptions(file, dest)); err != nil {
		t.Fatal(err)
	}
	s3 := s3test.Start(t, nil, "offsite")
	there, err := s.Coordinator.Copy(ctx, copyOptions(filepath.Join(dest, name), s3.URL("offsite", "archives", "")))
	if err != nil {
		t.Fatal(err)
	}
	if keys := objectKeys(t, s3, "offsite", "archives"); strings.Join(keys, ",") != name+","+layout.SidecarName(name) {
		t.Fatalf("the S3 destination holds %v", keys)
	}
	if vr, err := verify.VerifyEncryptedArchive(ctx, there.Path, nil, vo); err != nil || !vr.OK {
		t.Fatalf("verify the copy on S3 without key: %v %+v", err, vr)
	}
	home := t.TempDir()
	if _, err := s.Coordinator.Copy(ctx, copyOptions(there.Path, home)); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{dest, home} {
		got, _ := os.ReadFile(filepath.Join(dir, name))
		if !bytes.Equal(got, stored) {
			t.Fatalf("the copy in %s differs (%d bytes of %d)", dir, len(got), len(stored))
		}
		m := sidecarOf(t, filepath.Join(dir, name))
		if m.CopiedFrom == nil || m.RunID == "" {
			t.Fatalf("the copy's sidecar: %+v", m)
		}
	}
	if vr, err := verify.VerifyEncryptedArchive(ctx, filepath.Join(home, name), key.identities, vo); err != nil || !vr.OK {
		t.Fatalf("verify the copy: %v %+v", err, vr)
	}
	bad := filepath.Join(t.TempDir(), name)
	os.WriteFile(bad, tampered, 0o600)
	os.WriteFile(layout.SidecarName(bad), sideData, 0o600)
	if _, err := s.Coordinator.Copy(ctx, copyOptions(bad, t.TempDir())); outcome.Of(err).Status != outcome.Refused {
		t.Fatalf("copy of a tampered archive: %v", err)
	}
	os.Remove(layout.SidecarName(bad))
	os.WriteFile(bad, stored, 0o600)
	if _, err := s.Coordinator.Copy(ctx, copyOptions(bad, t.TempDir())); outcome.Of(err).Status != outcome.Refused {
		t.Fatalf("copy of an archive without sidecar: %v", err)
	}
}
