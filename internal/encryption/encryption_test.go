package encryption

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// newKey writes an age identity file as age-keygen does and returns it with its recipient.
func newKey(t *testing.T) (path, recipient string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "key.txt")
	data := "# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, id.Recipient().String()
}

// keyPair is a new key's recipients, as a backup parses them, and its identity file read
// back, as a restore reads it.
func keyPair(t *testing.T) (*Recipients, *Identities) {
	t.Helper()
	keyFile, rc := newKey(t)
	r, err := ParseRecipients([]string{rc}, "--recipient")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ReadIdentityFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return r, ids
}

func seal(t *testing.T, r *Recipients, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := r.Encrypt(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func open(ids *Identities, data []byte) ([]byte, error) {
	r, err := ids.Decrypt(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTripAndFailures(t *testing.T) {
	r, ids := keyPair(t)
	otherFile, _ := newKey(t)
	other, err := ReadIdentityFile(otherFile)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("pbkdf2_sha256$600000$secret "), 10000) // several 64 KiB chunks
	ct := seal(t, r, plain)
	if !IsEncrypted(ct) || bytes.Contains(ct, []byte("pbkdf2_sha256")) {
		t.Fatal("ciphertext is not an age file or holds the plaintext")
	}
	got, err := open(ids, ct)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %v", err)
	}
	tampered := bytes.Clone(ct)
	tampered[len(tampered)/2] ^= 1
	cases := []struct {
		name string
		ids  *Identities
		data []byte
		want error
	}{
		{"wrong key", other, ct, ErrWrongKey},
		{"no key", nil, ct, ErrNoIdentity},
		{"tampered", ids, tampered, ErrDamaged},
		{"truncated at a chunk", ids, ct[:len(ct)-(len(ct)%(64<<10))], ErrDamaged},
		{"truncated by a byte", ids, ct[:len(ct)-1], ErrDamaged},
		{"not age", ids, []byte("{\"model\": \"auth.user\"}"), ErrDamaged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := open(c.ids, c.data)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// writeLog is a writer that keeps each write apart, as a file's system calls are.
type writeLog struct{ writes [][]byte }

func (l *writeLog) Write(p []byte) (int, error) {
	l.writes = append(l.writes, bytes.Clone(p))
	return len(p), nil
}

// The header (a dozen small pieces in age) reaches the output in one write, before Encrypt
// returns; the payload follows in age's chunks, and the whole decrypts.
func TestEncryptWritesHeaderOnce(t *testing.T) {
	keyFile, rc := newKey(t)
	_, rc2 := newKey(t)
	r, err := ParseRecipients([]string{rc, rc2}, "--recipient")
	if err != nil {
		t.Fatal(err)
	}
	var log writeLog
	w, err := r.Encrypt(&log)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.writes) != 1 || !IsEncrypted(log.writes[0]) {
		t.Fatalf("after Encrypt: %d writes, want the header in one", len(log.writes))
	}
	plain := bytes.Repeat([]byte("chapter text "), 20000) // several 64 KiB chunks
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := 1 + (len(plain)+(64<<10)-1)/(64<<10); len(log.writes) != want {
		t.Fatalf("%d writes, want the header and %d chunks", len(log.writes), want-1)
	}
	ids, err := ReadIdentityFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := open(ids, bytes.Join(log.writes, nil))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %v", err)
	}
}

// A header that cannot be written fails Encrypt, naming it.
func TestEncryptHeaderWriteError(t *testing.T) {
	_, rc := newKey(t)
	r, err := ParseRecipients([]string{rc}, "--recipient")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	if _, err := r.Encrypt(failWriter{boom}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestParseRecipients(t *testing.T) {
	_, a := newKey(t)
	_, b := newKey(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sshLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	r, err := ParseRecipients([]string{"# ops team", b, "", a, a, sshLine + " ops@host"}, "recipients.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Public(); len(got) != 3 || !r.Same([]string{sshLine, a, b, a}) || r.Same([]string{a, b}) {
		t.Fatalf("public %v: want three, deduplicated, comment dropped", got)
	}
	secret := "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	bad := []struct{ line, want string }{
		{secret, "secret key"},
		{"age1notakey", "malformed age recipient"},
		{"ssh-ed25519 AAAA", "SSH public key"},
		{"pgp:ABCDEF", "not a recipient"},
		{"MyPassPhraseSecret", "not a recipient"}, // a passphrase file given by mistake
		{a + " " + secret, "one word"},            // a key pair pasted on one line
		{a + "," + secret, "one word"},
	}
	for _, c := range bad {
		_, err := ParseRecipients([]string{c.line}, "--recipient")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--recipient") {
			t.Errorf("%q: got %v, want an error naming --recipient and %q", c.line, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "QQQQQQQQ") || strings.Contains(err.Error(), "MyPass") || strings.Contains(err.Error(), "ABCDEF")) {
			t.Errorf("the error echoes a secret key: %v", err)
		}
	}
	if _, err := ParseRecipients([]string{"# nobody"}, "f.txt"); err == nil {
		t.Error("a list without recipients was accepted")
	}
}

func TestSSHIdentity(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := ParseRecipients([]string{string(ssh.MarshalAuthorizedKey(sshPub))}, "--recipient")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ReadIdentityFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(ids, seal(t, r, []byte("chapter 12"))); err != nil || string(got) != "chapter 12" {
		t.Fatalf("ssh round trip: %q %v", got, err)
	}
}

func TestPassphraseKey(t *testing.T) {
	id, err := NewBackupKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealKey(id, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(id.String())) {
		t.Fatal("the sealed key holds the key in clear")
	}
	got, err := OpenKey(sealed, "correct horse")
	if err != nil || got.String() != id.String() {
		t.Fatalf("open: %v", err)
	}
	if _, err := OpenKey(sealed, "wrong"); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

func TestReadPassphrase(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pass")
	os.WriteFile(file, []byte("s3cret\r\nignored\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	t.Setenv("WNB_TEST_PASS", "from-env")
	cases := []struct {
		file, want, err string
	}{
		{file, "s3cret", ""},
		{"", "from-env", ""},
		{empty, "", "empty first line"},
		{filepath.Join(dir, "missing"), "", "passphrase file"},
	}
	for _, c := range cases {
		got, err := ReadPassphrase(c.file, "WNB_TEST_PASS")
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ReadPassphrase(%q) = %q, %v; want %q, %q", c.file, got, err, c.want, c.err)
		}
	}
}

func TestRunKey(t *testing.T) {
	k, err := NewRunKey()
	if err != nil {
		t.Fatal(err)
	}
	r, err := RecipientsFromPublic([]string{k.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(k.Identities(), seal(t, r, []byte("part"))); err != nil || string(got) != "part" {
		t.Fatalf("run key round trip: %q %v", got, err)
	}
}

// FuzzParseRecipients: any recipients file is parsed or refused, never a panic, and an error
// never repeats a secret key given by mistake.
func FuzzParseRecipients(f *testing.F) {
	f.Add("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n# c\n")
	f.Add("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF0 x\n")
	f.Add("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n")
	f.Fuzz(func(t *testing.T, data string) {
		_, err := ParseRecipients(strings.Split(data, "\n"), "f")
		if err != nil && strings.Contains(err.Error(), "AGE-SECRET-KEY-1") {
			t.Fatalf("error echoes a secret key: %v", err)
		}
	})
}

// FuzzIdentityFile: any identity file is parsed or refused with an error that names the file
// and never holds its content.
func FuzzIdentityFile(f *testing.F) {
	f.Add([]byte("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n"))
	f.Add([]byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "id")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ReadIdentityFile(path)
		if err != nil && len(data) > 24 && strings.Contains(err.Error(), string(data[:24])) {
			t.Fatalf("error repeats the file's content: %v", err)
		}
	})
}

// The key files the operator names may be pipes (--identity <(pass show key)), which are
// read whole; an endless or huge one (/dev/zero, a wrong file) is refused by name instead of
// taking the memory.
func TestKeyFilesBounded(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "key.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() { // the writer of a pipe, as process substitution would be
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.WriteString(id.String() + "\n")
			f.Close()
		}
	}()
	ids, err := ReadIdentityFile(fifo)
	if err != nil || len(ids.list) != 1 {
		t.Fatalf("identity from a pipe: %v", err)
	}
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, bytes.Repeat([]byte("age1\n"), maxKeyFileSize/5+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		read func(string) error
	}{
		{"identity", func(p string) error { _, err := ReadIdentityFile(p); return err }},
		{"recipients", func(p string) error { _, err := ReadRecipientsFile(p); return err }},
		{"passphrase", func(p string) error { _, err := ReadPassphrase(p, ""); return err }},
	} {
		for _, p := range []string{"/dev/zero", huge} {
			if err := tt.read(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "larger than") {
				t.Errorf("%s file %s: err = %v, want it refused as too large, by name", tt.name, p, err)
			}
		}
	}
}

// A key or passphrase given where a file name belongs is not repeated in the error.
func TestKeyFileNameNotRepeated(t *testing.T) {
	const secret = "AGE-SECRET-KEY-1QQQSECRETSECRET"
	_, err1 := ReadIdentityFile(secret)
	_, err2 := ReadPassphrase("hunter2 my passphrase", "")
	_, err3 := ReadRecipientsFile(secret)
	for _, err := range []error{err1, err2, err3} {
		if err == nil || strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "not shown") {
			t.Errorf("error %v", err)
		}
	}
}

// TestJoinRecipients: recipients joined from several sources are each key once, sorted, and
// each still the recipient of its own key: a file encrypted to the join opens with any one.
func TestJoinRecipients(t *testing.T) {
	keyA, a := newKey(t)
	keyB, b := newKey(t)
	_, c := newKey(t)
	first, err := ParseRecipients([]string{c, a}, "--recipient")
	if err != nil {
		t.Fatal(err)
	}
	second, err := ParseRecipients([]string{b, a}, "--recipients-file f")
	if err != nil {
		t.Fatal(err)
	}
	all := JoinRecipients(first, second)
	want := []string{a, b, c}
	slices.Sort(want)
	if got := all.Public(); !slices.Equal(got, want) {
		t.Fatalf("joined %v, want %v", got, want)
	}
	var sealed bytes.Buffer
	w, err := all.Encrypt(&sealed)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "chapter one")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{keyA, keyB} {
		ids, err := ReadIdentityFile(key)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ids.Decrypt(bytes.NewReader(sealed.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got, _ := io.ReadAll(r); string(got) != "chapter one" {
			t.Fatalf("%s: decrypted %q", key, got)
		}
	}
}

// TestKeyFileNobodyWrites: a key file that is a FIFO nobody opens for writing, or one whose
// writer never finishes, is refused by name after keyFileWait, instead of holding the run.
func TestKeyFileNobodyWrites(t *testing.T) {
	defer func(d time.Duration) { keyFileWait = d }(keyFileWait)
	keyFileWait = 300 * time.Millisecond
	dir := t.TempDir()
	reads := []struct {
		name string
		read func(string) error
	}{
		{"identity", func(p string) error { _, err := ReadIdentityFile(p); return err }},
		{"recipients", func(p string) error { _, err := ReadRecipientsFile(p); return err }},
		{"passphrase", func(p string) error { _, err := ReadPassphrase(p, ""); return err }},
	}
	for i, tt := range reads {
		for _, writer := range []string{"none", "silent"} {
			fifo := filepath.Join(dir, fmt.Sprintf("key%d-%s.fifo", i, writer))
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			if writer == "silent" { // opens its end, writes a line, never closes it
				w, err := os.OpenFile(fifo, os.O_RDWR, 0) // RDWR: opens without waiting for a reader
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				w.WriteString("age1partial\n")
			}
			start := time.Now()
			err := tt.read(fifo)
			if err == nil || !errors.Is(err, errNotWritten) || !strings.Contains(err.Error(), fifo) {
				t.Errorf("%s from a FIFO (writer: %s): %v, want it refused by name", tt.name, writer, err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("%s from a FIFO (writer: %s): took %s", tt.name, writer, took)
			}
		}
	}
}

// A file of more than a chunk, written in one piece as a copy does, reaches age in two
// (chunkFeeder): the same bytes, and about 120 KiB of garbage a file instead of 192.
func TestEncryptFeedsTheFirstChunkInTwo(t *testing.T) {
	r, ids := keyPair(t)
	for _, size := range []int{0, 1, 40 << 10, 64 << 10, 64<<10 + 1, 80 << 10, 1 << 20} {
		plain := make([]byte, size)
		rand.Read(plain)
		if got, err := open(ids, seal(t, r, plain)); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: round trip: %v", size, err)
		}
	}
	plain := make([]byte, 200<<10)
	perFile := func(encrypt func() (io.WriteCloser, error)) int64 {
		return testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w, _ := encrypt()
				w.Write(plain)
				w.Close()
			}
		}).AllocedBytesPerOp()
	}
	fed := perFile(func() (io.WriteCloser, error) { return r.Encrypt(io.Discard) })
	whole := perFile(func() (io.WriteCloser, error) { return age.Encrypt(io.Discard, r.list...) })
	if whole-fed < 48<<10 {
		t.Fatalf("encrypting a 200 KiB file allocates %d KiB, %d KiB fed to age at once; want some 70 KiB less (age's chunk buffer grown once)", fed>>10, whole>>10)
	}
}
