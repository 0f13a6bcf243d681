package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// ageKey is an age identity written to key.txt as age-keygen writes it.
type ageKey struct {
	id   *age.X25519Identity
	file string
}

func newAgeKey(t *testing.T) ageKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "key.txt")
	text := "# created: test\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return ageKey{id: id, file: file}
}

func (k ageKey) recipients(t *testing.T) *encryption.Recipients {
	t.Helper()
	rc, err := encryption.ParseRecipients([]string{k.id.Recipient().String()}, "test")
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// open decrypts data with the key, failing the test if it cannot.
func (k ageKey) open(t *testing.T, what string, data []byte) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(data), k.id)
	if err != nil {
		t.Fatalf("decrypt %s: %v", what, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decrypt %s: %v", what, err)
	}
	return out
}

// backupBytes maps every key under a backup location (for an object-store backup: its
// prefix and every object of the store) to its bytes: what a thief of the backup host gets.
func backupBytes(t *testing.T, loc, name string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	b, err := storage.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := map[string][]byte{}
	for _, prefix := range []string{name + "/", layout.ObjectsDir + "/"} {
		err := b.Walk(ctx, prefix, func(o storage.Object) error {
			rc, _, err := b.Open(ctx, o.Key)
			if err != nil {
				return err
			}
			defer rc.Close()
			out[o.Key], err = io.ReadAll(rc)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) == 0 {
		t.Fatalf("nothing under %s in %s", name, loc)
	}
	return out
}

// userSecrets are a password hash and an e-mail address of the demo platform's users, read
// from a plaintext fixture of accounts.User.
func userSecrets(t *testing.T, fixture []byte) []string {
	t.Helper()
	hash := regexp.MustCompile(`pbkdf2_sha256\$[0-9]+\$[A-Za-z0-9]+\$[A-Za-z0-9+/=]+`).Find(fixture)
	mail := regexp.MustCompile(`user[0-9]+@example\.com`).Find(fixture)
	if hash == nil || mail == nil {
		t.Fatalf("no password hash (%q) or e-mail address (%q) in the users' fixture", hash, mail)
	}
	return []string{string(hash), string(mail)}
}

// checkNoSecret fails if any byte string of secrets occurs in any of the backup's files.
func checkNoSecret(t *testing.T, files map[string][]byte, secrets map[string][]byte) {
	t.Helper()
	for what, s := range secrets {
		for key, data := range files {
			if bytes.Contains(data, s) {
				t.Errorf("%s (%.40q) found in %s", what, s, key)
			}
		}
	}
}

// ageCLI decrypts file with the stock age command and key file.
func ageCLI(t *testing.T, keyFile, file string) []byte {
	t.Helper()
	if _, err := exec.LookPath("age"); err != nil {
		t.Fatal("the age command is not installed (Debian's age package)")
	}
	out, err := exec.Command("age", "-d", "-i", keyFile, file).Output()
	if err != nil {
		t.Fatalf("age -d -i key.txt %s: %v", file, err)
	}
	return out
}

// plainSums decrypts one of a backup's manifests of plaintext sums.
func plainSums(t *testing.T, k ageKey, data []byte) map[string]string {
	t.Helper()
	sums, err := layout.ParseSums(bytes.NewReader(k.open(t, "plain sums", data)))
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// An encrypted folder backup, on both engines and both kinds of destination, holds none of
// the platform's secrets nor any secret key in any of its bytes; its SHA256SUMS lists the
// stored .age files and `sha256sum -c` passes; the stock age command (or, for objects, the
// library) decrypts its fixtures and files to the bytes an unencrypted backup holds; its
// manifest of plaintext sums lists every fixture and file; and its index holds no plaintext
// sum.
func TestEncryptedBackupHoldsNoSecret(t *testing.T) {
	tests := []struct {
		name   string
		engine string
		s3     bool
	}{
		{"sqlite local", database.SQLite, false},
		{"postgres local", database.Postgres, false},
		{"sqlite s3 objects", database.SQLite, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filledPlatform(t, tc.engine, demo.DefaultOptions())
			s := startSession(t, p, 2, queue.Config{})
			key := newAgeKey(t)
			plainDir, dest := t.TempDir(), t.TempDir()
			if tc.s3 {
				dest = s3test.Start(t, nil, "backups").URL("backups", "enc", "")
			}
			backup := func(dir string, rc *encryption.Recipients) (*coordinator.BackupReport, string) {
				rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
					DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dir, ChunkRows: 40, FilesPerTask: 7, Recipients: rc,
				})
				if err != nil {
					t.Fatalf("backup: %v", err)
				}
				where, _, _ := strings.Cut(rep.Path, "?")
				return rep, path.Base(where)
			}
			plainRep, plainName := backup(plainDir, nil)
			rep, name := backup(dest, key.recipients(t))
			plain := treeFiles(t, filepath.Join(plainDir, plainName))
			chunked := false
			for _, m := range rep.Models {
				chunked = chunked || m.Pieces > 1
			}
			if !chunked {
				t.Fatal("no model was read in pieces: a model's pieces encrypted on their way are not tested")
			}
			stored := backupBytes(t, dest, name)
			at := func(rel string) []byte {
				if tc.s3 {
					return stored[rel]
				}
				return stored[name+"/"+rel]
			}
			if tc.s3 {
				at = func(rel string) []byte {
					if b, ok := stored[name+"/"+rel]; ok {
						return b
					}
					return stored[rel]
				}
			}

			users := plain["db_accounts_user.json"]
			secrets := map[string][]byte{"secret key": []byte("AGE-SECRET-KEY-")}
			for _, s := range userSecrets(t, users) {
				secrets["user secret"+s[:4]] = []byte(s)
			}
			var sample string
			for rel, data := range plain {
				if strings.HasPrefix(rel, layout.FilesDir+"/") && len(data) >= 64 {
					sample = rel
					secrets["content of "+rel] = data[:64]
					break
				}
			}
			if sample == "" {
				t.Fatal("no storage file of 64 bytes or more")
			}
			checkNoSecret(t, stored, secrets)

			meta, err := layout.ParseMetadata(at(layout.FileMetadata))
			if err != nil {
				t.Fatal(err)
			}
			enc := meta.Encryption
			own := layout.PlainSumsName(rep.RunID)
			if enc == nil || enc.Format != "age" || enc.Mode != encryption.ModeRecipients || len(enc.Recipients) != 1 ||
				enc.Recipients[0] != key.id.Recipient().String() || len(enc.PlainSums) != 1 || enc.PlainSums[0] != own {
				t.Fatalf("metadata encryption: %+v", enc)
			}
			if meta.Files.Count != plainRep.Files || len(meta.Models) != len(plainRep.Models) {
				t.Fatalf("encrypted backup has %d files, %d models; unencrypted %d, %d", meta.Files.Count, len(meta.Models), plainRep.Files, len(plainRep.Models))
			}
			sums, err := layout.ParseSums(bytes.NewReader(at(layout.FileSums)))
			if err != nil {
				t.Fatal(err)
			}
			pl := plainSums(t, key, at(own))
			for _, m := range meta.Models {
				want := plain[strings.TrimSuffix(m.File, encryption.Ext)]
				if !strings.HasSuffix(m.File, encryption.Ext) || sums[m.File] != m.SHA256 || sumOf(at(m.File)) != m.SHA256 || int64(len(at(m.File))) != m.Bytes {
					t.Errorf("model %s: file %s, SHA256SUMS %s, metadata %s/%d, stored %s/%d", m.Label, m.File, sums[m.File], m.SHA256, m.Bytes, sumOf(at(m.File)), len(at(m.File)))
				}
				if got := key.open(t, m.File, at(m.File)); !bytes.Equal(got, want) {
					t.Errorf("%s decrypts to %d bytes unlike the unencrypted backup's %d", m.File, len(got), len(want))
				}
				if pl[strings.TrimSuffix(m.File, encryption.Ext)] != sumOf(want) {
					t.Errorf("plain sums: %s is %q, want %s", m.File, pl[strings.TrimSuffix(m.File, encryption.Ext)], sumOf(want))
				}
			}
			checkEncryptedIndex(t, key, at, sums, pl, plain, tc.s3)
			if _, ok := sums[own]; !ok {
				t.Errorf("SHA256SUMS does not list %s", own)
			}
			if tc.s3 {
				return
			}
			dir := filepath.Join(dest, name)
			sha256sumCheck(t, dir)
			if got := ageCLI(t, key.file, filepath.Join(dir, "db_accounts_user.json.age")); !bytes.Equal(got, users) {
				t.Errorf("age -d of the users' fixture: %d bytes unlike the unencrypted fixture's %d", len(got), len(users))
			}
			if got := ageCLI(t, key.file, filepath.Join(dir, filepath.FromSlash(sample)+encryption.Ext)); !bytes.Equal(got, plain[sample]) {
				t.Errorf("age -d of %s.age: not the file's bytes", sample)
			}
		})
	}
}

// checkEncryptedIndex checks an encrypted backup's file index: every file stored as .age (or
// an object named by its ciphertext's sum), listed with its ciphertext's sum in SHA256SUMS,
// its plaintext size, its plaintext sum only in the encrypted manifest, and decrypting to the
// unencrypted backup's bytes. An object-store index carries the ciphertext's sum too.
func checkEncryptedIndex(t *testing.T, key ageKey, at func(string) []byte, sums, pl map[string]string, plain map[string][]byte, objects bool) {
	t.Helper()
	raw := at(layout.FileIndexGz)
	var n int
	err := layout.ReadFileIndex(bytes.NewReader(raw), func(e messages.FileEntry) error {
		n++
		want := plain[strings.TrimSuffix(e.Path, encryption.Ext)]
		data := at(e.Path)
		if !objects {
			// A folder backup's index leaves the sums to SHA256SUMS.
			if e.SHA256 != "" {
				t.Errorf("%s: the index of a backup folder lists its sum", e.Path)
			}
			e.SHA256 = sums[e.Path]
		}
		if objects {
			data = at(e.Stored)
			if e.Stored != layout.ObjectKey(e.SHA256) {
				t.Errorf("%s stored as %s, not under its ciphertext's sum", e.Path, e.Stored)
			}
		}
		switch {
		case !strings.HasSuffix(e.Path, encryption.Ext):
			t.Errorf("index path %s without .age", e.Path)
		case e.Plain != "":
			t.Errorf("index holds the plaintext sum of %s", e.Path)
		case sums[e.Path] != e.SHA256 || sumOf(data) != e.SHA256:
			t.Errorf("%s: SHA256SUMS %s, index %s, stored %s", e.Path, sums[e.Path], e.SHA256, sumOf(data))
		case e.Size != int64(len(want)):
			t.Errorf("%s: index size %d, plaintext %d", e.Path, e.Size, len(want))
		case pl[strings.TrimSuffix(e.Path, encryption.Ext)] != sumOf(want):
			t.Errorf("plain sums of %s: %q", e.Path, pl[strings.TrimSuffix(e.Path, encryption.Ext)])
		case !bytes.Equal(key.open(t, e.Path, data), want):
			t.Errorf("%s does not decrypt to the file's bytes", e.Path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("empty file index")
	}
	var sc = bufio.NewScanner(bytes.NewReader(at(layout.FileSums)))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "  "+layout.FilesDir+"/") && !strings.HasSuffix(sc.Text(), encryption.Ext) {
			t.Errorf("SHA256SUMS lists a file without .age: %s", sc.Text())
		}
	}
}

// backupName is a report's backup name, whatever its destination.
func backupName(rep *coordinator.BackupReport) string {
	where, _, _ := strings.Cut(rep.Path, "?")
	return path.Base(where)
}

// readKey reads one object of a destination.
func readKey(t *testing.T, loc, key string) []byte {
	t.Helper()
	b, err := storage.Open(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rc, _, err := b.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// hasWarning reports whether a warning holds every one of parts.
func hasWarning(warnings []string, parts ...string) bool {
	for _, w := range warnings {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(w, p)
		}
		if all {
			return true
		}
	}
	return false
}

// A second encrypted backup to the same recipients reuses the first one's encrypted copies
// (hard links locally, the same objects on S3), carries its manifest of plaintext sums, and
// stays checkable on its own; one to another recipient, or an unencrypted one, reuses
// nothing and says why, naming the base. Names that sort differently once ".age" is added
// ("a", "a-b") are reused too.
func TestEncryptedIncrementalReuse(t *testing.T) {
	for _, s3 := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "s3"}[s3], func(t *testing.T) {
			st := newIncStorage(t)
			for _, k := range []string{"a", "a-b", "b/x", "media/one.txt", "media/two.txt"} {
				st.put(k, "content of "+k+" with a secret "+strings.Repeat("z", 40))
			}
			c := filesSession(t, st)
			dest := t.TempDir()
			if s3 {
				dest = s3test.Start(t, nil, "backups").URL("backups", "inc", "")
			}
			k1, k2 := newAgeKey(t), newAgeKey(t)
			with := func(rc *encryption.Recipients) func(*coordinator.BackupOptions) {
				return func(o *coordinator.BackupOptions) { o.BackupDir, o.Recipients = dest, rc }
			}
			first := filesBackup(t, c, st, dest, with(k1.recipients(t)))
			st.put("media/three.txt", "a new file")
			second := filesBackup(t, c, st, dest, with(k1.recipients(t)))
			n1, n2 := backupName(first), backupName(second)
			if second.Base != n1 || second.Reused.Files != 5 || second.New.Files != 1 {
				t.Fatalf("second backup: base %q, reused %d, new %d; want %s, 5, 1", second.Base, second.Reused.Files, second.New.Files, n1)
			}
			meta, err := layout.ParseMetadata(readKey(t, dest, n2+"/"+layout.FileMetadata))
			if err != nil {
				t.Fatal(err)
			}
			seg1, seg2 := layout.PlainSumsName(first.RunID), layout.PlainSumsName(second.RunID)
			if meta.Files.Reused.Files != 5 || meta.Encryption == nil || strings.Join(meta.Encryption.PlainSums, " ") != seg1+" "+seg2 {
				t.Fatalf("second backup's metadata: reused %d, encryption %+v", meta.Files.Reused.Files, meta.Encryption)
			}
			sums, err := layout.ParseSums(bytes.NewReader(readKey(t, dest, n2+"/"+layout.FileSums)))
			if err != nil {
				t.Fatal(err)
			}
			// The newest segment listing a path holds its plaintext sum; every file has one.
			covered := plainSums(t, k1, readKey(t, dest, n2+"/"+seg1))
			for p, s := range plainSums(t, k1, readKey(t, dest, n2+"/"+seg2)) {
				covered[p] = s
			}
			for _, seg := range []string{seg1, seg2} {
				if sums[seg] != sumOf(readKey(t, dest, n2+"/"+seg)) {
					t.Errorf("SHA256SUMS lists %s as %q", seg, sums[seg])
				}
			}
			for _, k := range []string{"a", "a-b", "b/x", "media/one.txt", "media/three.txt"} {
				data, _ := os.ReadFile(filepath.Join(st.dir, filepath.FromSlash(k)))
				if covered[layout.FilesDir+"/"+k] != sumOf(data) {
					t.Errorf("plaintext sum of %s: %q", k, covered[layout.FilesDir+"/"+k])
				}
			}
			if !s3 {
				sha256sumCheck(t, filepath.Join(dest, n2))
				if !sameInode(t, filepath.Join(dest, n1), filepath.Join(dest, n2), "a-b.age") {
					t.Error("a-b.age is not the first backup's copy, hard-linked")
				}
			}

			other := filesBackup(t, c, st, dest, with(k2.recipients(t)))
			if other.Base != "" || other.Reused.Files != 0 || !hasWarning(other.Warnings, n2, "other recipients") {
				t.Fatalf("backup to another recipient: base %q, reused %d, warnings %q", other.Base, other.Reused.Files, other.Warnings)
			}
			plainRep := filesBackup(t, c, st, dest, with(nil))
			if plainRep.Reused.Files != 0 || !hasWarning(plainRep.Warnings, backupName(other), "encrypted and this backup is not") {
				t.Fatalf("unencrypted backup after encrypted ones: reused %d, warnings %q", plainRep.Reused.Files, plainRep.Warnings)
			}
		})
	}
}

// Passphrase mode: the backup key is sealed with the passphrase into backup_key.age, listed
// in SHA256SUMS, and opens to the key the metadata's recipient is of; a second backup with the
// same passphrase keeps that key and reuses the files; one with another passphrase warns,
// naming the base, and makes a new key. The passphrase is in no byte of the backups.
func TestPassphraseBackupKeepsKey(t *testing.T) {
	st := newIncStorage(t)
	for _, k := range []string{"media/one.txt", "media/two.txt"} {
		st.put(k, "passphrase content of "+k)
	}
	c := filesSession(t, st)
	dest := t.TempDir()
	const pass = "correct horse battery staple 42"
	with := func(p string) func(*coordinator.BackupOptions) {
		return func(o *coordinator.BackupOptions) { o.BackupDir, o.Passphrase = dest, p }
	}
	first := filesBackup(t, c, st, dest, with(pass))
	n1 := backupName(first)
	m1 := readMetadata(t, filepath.Join(dest, n1))
	sealed := readKey(t, dest, n1+"/"+encryption.KeyFile)
	key, err := encryption.OpenKey(sealed, pass)
	if err != nil {
		t.Fatal(err)
	}
	if m1.Encryption == nil || m1.Encryption.Mode != encryption.ModePassphrase || m1.Encryption.Key != encryption.KeyFile ||
		len(m1.Encryption.Recipients) != 1 || m1.Encryption.Recipients[0] != key.Recipient().String() {
		t.Fatalf("metadata encryption %+v, key %s", m1.Encryption, key.Recipient())
	}
	sha256sumCheck(t, filepath.Join(dest, n1))
	sums, _ := layout.ParseSums(bytes.NewReader(readKey(t, dest, n1+"/"+layout.FileSums)))
	if sums[encryption.KeyFile] != sumOf(sealed) {
		t.Errorf("SHA256SUMS lists %s as %q", encryption.KeyFile, sums[encryption.KeyFile])
	}
	opened := (ageKey{id: key}).open(t, "media/one.txt.age", readKey(t, dest, n1+"/files/media/one.txt.age"))
	if string(opened) != "passphrase content of media/one.txt" {
		t.Errorf("the backup key opens media/one.txt.age to %q", opened)
	}

	second := filesBackup(t, c, st, dest, with(pass))
	m2 := readMetadata(t, filepath.Join(dest, backupName(second)))
	if second.Base != n1 || second.Reused.Files != 2 || m2.Encryption == nil || m2.Encryption.Recipients[0] != key.Recipient().String() {
		t.Fatalf("second passphrase backup: base %q, reused %d, encryption %+v", second.Base, second.Reused.Files, m2.Encryption)
	}
	third := filesBackup(t, c, st, dest, with("another passphrase"))
	m3 := readMetadata(t, filepath.Join(dest, backupName(third)))
	if third.Reused.Files != 0 || !hasWarning(third.Warnings, backupName(second), encryption.KeyFile) ||
		m3.Encryption.Recipients[0] == key.Recipient().String() {
		t.Fatalf("backup with another passphrase: reused %d, warnings %q, recipients %v", third.Reused.Files, third.Warnings, m3.Encryption.Recipients)
	}
	for _, rep := range []*coordinator.BackupReport{first, second, third} {
		checkNoSecret(t, backupBytes(t, dest, backupName(rep)), map[string][]byte{
			"passphrase": []byte(pass), "secret key": []byte("AGE-SECRET-KEY-"), "content": []byte("passphrase content")})
	}
}

// A passphrase run whose coordinator is killed -9 is resumed only with the passphrase given
// again (the record never holds it; the refusal names where to give it), and the resume keeps
// the key its predecessor sealed into the staging area: the copies done before the crash and
// those done after all open with the one key of the published backup_key.age.
func TestResumePassphraseRun(t *testing.T) {
	opts := demo.DefaultOptions()
	opts.Books, opts.ChaptersPerBook = 6, 20
	p := sqlitePlatform(t, opts)
	embURL := queuetest.Server(t)
	backups := t.TempDir()
	const run, pass = "resume-pass-1", "resume passphrase 7"
	startWorker := func() *pipeline.Session {
		s, err := pipeline.Start(context.Background(), pipeline.Config{NATSURL: embURL, Workers: 1,
			DatabaseURL: p.dbURL, StorageURL: p.storage, Backoff: func(int) time.Duration { return 20 * time.Millisecond }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	s := startWorker()
	child := exec.Command(os.Args[0], "-test.run=^TestHelperCoordinator$", "-test.v")
	child.Env = append(os.Environ(), "WNB_CHILD_NATS="+embURL, "WNB_CHILD_DB="+p.dbURL, "WNB_CHILD_STORAGE="+p.storage,
		"WNB_CHILD_BACKUPS="+backups, "WNB_CHILD_RUN="+run, "WNB_CHILD_PASSPHRASE="+pass)
	out, _ := os.Create(filepath.Join(t.TempDir(), "child.log"))
	child.Stdout, child.Stderr = out, out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	results, err := s.JetStream.Stream(context.Background(), messages.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, 5*time.Millisecond, "two copies of the child's run", func() bool {
		info, err := results.Info(context.Background(), jetstream.WithSubjectFilter(messages.RunResultsSubject(run)))
		copies := 0
		if err == nil {
			for subj := range info.State.Subjects {
				if strings.Contains(subj, ".copy-") {
					copies++
				}
			}
		}
		return copies >= 2
	})
	s.Close()
	child.Process.Kill()
	child.Wait()
	s = startWorker()
	waitUntil(t, 30*time.Second, messages.RunHeartbeat, "the dead coordinator's run to show as abandoned", func() bool {
		rec, err := s.Coordinator.RunRecord(context.Background(), run)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(rec.Options), pass) {
			t.Fatalf("the run record holds the passphrase: %s", rec.Options)
		}
		return rec.Shown(time.Now()) == messages.RunAbandoned
	})
	o := coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, Resume: run}
	if _, err := s.Coordinator.Backup(context.Background(), o); err == nil || !strings.Contains(err.Error(), "WNB_AGE_PASSPHRASE") {
		t.Fatalf("resume without the passphrase: %v", err)
	}
	o.Passphrase = pass
	rep, err := s.Coordinator.Backup(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	key, err := encryption.OpenKey(readKey(t, rep.Path, encryption.KeyFile), pass)
	if err != nil {
		t.Fatal(err)
	}
	k := ageKey{id: key}
	files := treeFiles(t, filepath.Join(rep.Path, layout.FilesDir))
	if int64(len(files)) != rep.Files || rep.Files != int64(p.summary.Files) {
		t.Fatalf("resumed backup: %d files stored, %d reported, platform %d", len(files), rep.Files, p.summary.Files)
	}
	for rel, data := range files {
		want, err := os.ReadFile(filepath.Join(p.storage, filepath.FromSlash(strings.TrimSuffix(rel, encryption.Ext))))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.open(t, rel, data), want) {
			t.Errorf("%s does not decrypt to the file", rel)
		}
	}
	sha256sumCheck(t, rep.Path)
}

// A file whose encrypted copy's name (NAME.age) is longer than a file name may be fails an
// encrypted folder backup at its plan, naming the file and what to do, before any task runs
// (each copy failed only after its task's every attempt); a name that just fits (251 bytes,
// 255 with .age) is backed up, and an encrypted archive holds the longer one.
func TestEncryptedFolderRefusesNamesTooLong(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	fits, long := strings.Repeat("f", 251), strings.Repeat("l", 252)
	for _, name := range []string{fits, long} {
		if err := os.WriteFile(filepath.Join(p.storage, name), []byte(name[:1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := newAgeKey(t)
	s := startSession(t, p, 2, queue.Config{})
	dir := t.TempDir()
	start := time.Now()
	_, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dir, Recipients: key.recipients(t)})
	if err == nil || !strings.Contains(err.Error(), long) || strings.Contains(err.Error(), fits) || !strings.Contains(err.Error(), "--compress") {
		t.Fatalf("encrypted folder backup of a 252-byte name: %v, want a failure naming it (only) and --compress", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the failure took %s: it should come from the plan, not from retried copies", took)
	}
	if backups, _ := filepath.Glob(filepath.Join(dir, "backup_*")); len(backups) > 0 {
		t.Fatalf("a failed backup was published: %v", backups)
	}

	if _, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), Recipients: key.recipients(t), Compress: true}); err != nil {
		t.Fatalf("encrypted archive of a 252-byte name: %v", err)
	}

	os.Remove(filepath.Join(p.storage, long))
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), Recipients: key.recipients(t)})
	if err != nil {
		t.Fatalf("encrypted folder backup of a 251-byte name: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rep.Path, layout.FilesDir, fits+encryption.Ext)); err != nil {
		t.Fatalf("the 251-byte name's copy: %v", err)
	}
}
