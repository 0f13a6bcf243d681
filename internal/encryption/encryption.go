// Package encryption is the one place that reads and writes age-encrypted data
// (filippo.io/age): who a backup is encrypted to (Recipients, public keys only, which may
// travel in tasks and metadata), who can read it (Identities, read from a file by the
// process that uses them, never sent anywhere), the passphrase mode's sealed backup key, and
// the ephemeral run key that protects a run's intermediate outputs in its staging area.
package encryption

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"

	"github.com/webnovel/webnovel-backup/storage"
)

const (
	// Format is the metadata's encryption.format.
	Format = "age"
	// Ext ends the name of every encrypted file of a backup.
	Ext = ".age"
	// KeyFile is, in passphrase mode, the backup's own X25519 identity sealed with the
	// passphrase (age's scrypt recipient): `age -d backup_key.age > key.txt` opens it.
	KeyFile = "backup_key.age"
	// ModeRecipients encrypts to public keys given by the operator; ModePassphrase to a key
	// the tool generated and sealed with a passphrase (KeyFile).
	ModeRecipients = "recipients"
	ModePassphrase = "passphrase"
	// MaxSealedKeySize bounds KeyFile as it is read (it holds a few hundred bytes).
	MaxSealedKeySize = 1 << 16
	// maxKeyFileSize bounds the key files the operator names (recipients, identities, a
	// passphrase), which may be pipes: a few KiB each, even with many keys.
	maxKeyFileSize = 1 << 20
)

var (
	// ErrNoIdentity is a backup that is encrypted read without a key.
	ErrNoIdentity = errors.New("the backup is encrypted (age): give --identity FILE or WNB_AGE_IDENTITY_FILE (or, for a passphrase backup, --passphrase-file FILE or WNB_AGE_PASSPHRASE)")
	// ErrWrongKey is a backup whose encryption none of the given identities opens.
	ErrWrongKey = errors.New("none of the given age identities can decrypt it: wrong --identity or passphrase")
	// ErrDamaged is ciphertext that fails its authentication: tampered or truncated.
	ErrDamaged = errors.New("encrypted data is damaged or truncated (age authentication failed)")
)

// Recipients are the public keys a backup is encrypted to.
type Recipients struct {
	list   []age.Recipient
	public []string // canonical, sorted, deduplicated
}

// ParseRecipients reads recipients as age writes them: "age1…" (X25519), "age1pq1…"
// (hybrid post-quantum) or an SSH public key ("ssh-ed25519 …", "ssh-rsa …"). from names where
// they came from, for errors ("--recipient", a file name). Blank lines and "#" comments are
// skipped. A recipients file that holds a secret key is refused without echoing it.
func ParseRecipients(lines []string, from string) (*Recipients, error) {
	r := &Recipients{}
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rc, public, err := parseRecipient(line)
		if err != nil {
			return nil, fmt.Errorf("%s: recipient %d: %w", from, i+1, err)
		}
		if slices.Contains(r.public, public) {
			continue
		}
		r.list = append(r.list, rc)
		r.public = append(r.public, public)
	}
	if len(r.list) == 0 {
		return nil, fmt.Errorf("%s: no recipients", from)
	}
	r.sort()
	return r, nil
}

// sort orders the keys by their canonical public form, each recipient with its key.
func (r *Recipients) sort() {
	order := make([]int, len(r.public))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(r.public[a], r.public[b]) })
	list, public := make([]age.Recipient, len(order)), make([]string, len(order))
	for i, j := range order {
		list[i], public[i] = r.list[j], r.public[j]
	}
	r.list, r.public = list, public
}

func parseRecipient(s string) (age.Recipient, string, error) {
	switch {
	case strings.HasPrefix(s, "AGE-SECRET-KEY-"):
		return nil, "", errors.New("this is a secret key (AGE-SECRET-KEY-…), not a recipient: give its public key (age-keygen -y)")
	case strings.HasPrefix(s, "ssh-"):
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
		if err != nil {
			return nil, "", fmt.Errorf("malformed SSH public key: %v", err)
		}
		rc, err := agessh.ParseRecipient(s)
		if err != nil {
			return nil, "", fmt.Errorf("SSH public key of type %s: %v", pk.Type(), err)
		}
		// Canonical without the comment, which says nothing about the key.
		return rc, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))), nil
	case strings.HasPrefix(s, "age1") && strings.ContainsAny(s, " \t,;"):
		// Not quoted: what follows the key may be its secret key, pasted on the same line.
		return nil, "", fmt.Errorf("malformed age recipient %.12s…: a recipient is one word, this holds more (what follows it is not shown, in case it is a secret key): give one recipient each", s)
	case strings.HasPrefix(s, "age1"):
		rcs, err := age.ParseRecipients(strings.NewReader(s))
		if err != nil {
			return nil, "", fmt.Errorf("malformed age recipient %.12s…: %v", s, err)
		}
		return fastRecipient(rcs[0]), s, nil
	}
	// Not echoed, not even its start: a wrong file given here may hold a passphrase.
	return nil, "", errors.New("not a recipient: want age1… (age), age1pq1… (post-quantum) or an SSH public key (ssh-ed25519 …, ssh-rsa …)")
}

// JoinRecipients is the recipients of all rs, each key once.
func JoinRecipients(rs ...*Recipients) *Recipients {
	all := &Recipients{}
	for _, r := range rs {
		for i, public := range r.public {
			if !slices.Contains(all.public, public) {
				all.list = append(all.list, r.list[i])
				all.public = append(all.public, public)
			}
		}
	}
	all.sort()
	return all
}

// ReadRecipientsFile reads an age recipients file (one recipient per line).
func ReadRecipientsFile(path string) ([]string, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("recipients file: %w", err)
	}
	return strings.Split(string(data), "\n"), nil
}

// RecipientsFromPublic parses the canonical public keys a task or metadata carries.
func RecipientsFromPublic(public []string) (*Recipients, error) {
	return ParseRecipients(public, "task recipients")
}

// Public is the canonical, sorted list of the public keys: what metadata records and tasks
// carry, and what tells two backups encrypted to the same keys.
func (r *Recipients) Public() []string { return slices.Clone(r.public) }

// Same reports whether r encrypts to exactly the keys listed in public.
func (r *Recipients) Same(public []string) bool {
	p := slices.Clone(public)
	slices.Sort(p)
	return slices.Equal(r.public, slices.Compact(p))
}

// Encrypt returns a writer that encrypts into w; Close finishes the age stream (its last
// chunk) but does not close w. The header is in w when Encrypt returns.
func (r *Recipients) Encrypt(w io.Writer) (io.WriteCloser, error) {
	hw := &headerWriter{w: w}
	ew, err := age.Encrypt(hw, r.list...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := hw.flush(); err != nil {
		return nil, fmt.Errorf("encrypt: write header: %w", err)
	}
	return &chunkFeeder{WriteCloser: ew}, nil
}

// chunkFeeder hands age's stream writer a first write of more than a chunk in two pieces.
// age gathers each 64 KiB chunk in a bytes.Buffer that grows on demand: given a whole chunk
// at once it is sized exactly, and sealing the chunk's 16-byte tag in place then grows it
// again, to 128 KiB, copying — 192 KiB allocated for every file past one chunk, most of an
// encrypted backup's garbage. Given just over half a chunk first, it grows once, past a chunk
// and its tag: 120 KiB. The bytes written are the same.
type chunkFeeder struct {
	io.WriteCloser
	fed bool
}

// ageChunk is the plaintext size of one chunk of age's STREAM.
const ageChunk = 64 << 10

// feedFirst is the first piece: its buffer's next growth doubles it past a chunk and a tag.
const feedFirst = ageChunk/2 + 16

func (f *chunkFeeder) Write(p []byte) (int, error) {
	if f.fed || len(p) <= ageChunk {
		f.fed = true
		return f.WriteCloser.Write(p)
	}
	f.fed = true
	n, err := f.WriteCloser.Write(p[:feedFirst])
	if err != nil {
		return n, err
	}
	m, err := f.WriteCloser.Write(p[feedFirst:])
	return n + m, err
}

// headerWriter gathers what age.Encrypt writes before it returns (the header, in a dozen
// pieces of a few bytes, and the nonce) into one write: on an unbuffered file, a system call
// instead of a dozen. What comes after (the payload's chunks) passes straight through.
type headerWriter struct {
	w       io.Writer
	hdr     []byte
	flushed bool
}

func (h *headerWriter) Write(p []byte) (int, error) {
	if h.flushed {
		return h.w.Write(p)
	}
	h.hdr = append(h.hdr, p...)
	return len(p), nil
}

// flush writes the gathered header to w; from then on writes pass through.
func (h *headerWriter) flush() error {
	h.flushed = true
	_, err := h.w.Write(h.hdr)
	h.hdr = nil
	return err
}

// Identities are the secret keys that read a backup. They are read by the process that uses
// them from a file it was given, and never leave it.
type Identities struct {
	list []age.Identity
}

// ReadIdentityFile reads an age identity file (AGE-SECRET-KEY-1… lines, as age-keygen
// writes) or an unencrypted SSH private key (ed25519 or RSA). Errors name the file, never
// its content.
func ReadIdentityFile(path string) (*Identities, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	if bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		id, err := agessh.ParseIdentity(data)
		if err != nil {
			return nil, fmt.Errorf("identity file %s: SSH private key: %v", path, err)
		}
		return &Identities{list: []age.Identity{id}}, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %v", path, err)
	}
	return IdentitiesOf(ids...), nil
}

// IdentitiesOf wraps identities already parsed (a passphrase backup's opened key, a run key).
func IdentitiesOf(ids ...age.Identity) *Identities {
	list := make([]age.Identity, len(ids))
	for i, id := range ids {
		list[i] = fastIdentity(id)
	}
	return &Identities{list: list}
}

// Decrypt returns a reader of r's plaintext. A header that none of the identities opens is
// ErrWrongKey; ciphertext that fails authentication while it is read is ErrDamaged (the
// reader's error). Neither says anything about the keys.
func (i *Identities) Decrypt(r io.Reader) (io.Reader, error) {
	if i == nil || len(i.list) == 0 {
		return nil, ErrNoIdentity
	}
	pr, err := age.Decrypt(r, i.list...)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, ErrWrongKey
		}
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return damagedReader{pr}, nil
}

// damagedReader marks a read error of age's payload as ErrDamaged.
type damagedReader struct{ r io.Reader }

func (d damagedReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return n, err
}

// IsEncrypted reports whether data begins like an age file.
func IsEncrypted(head []byte) bool {
	return bytes.HasPrefix(head, []byte("age-encryption.org/v1\n"))
}

// NewBackupKey generates the X25519 key of a passphrase-mode backup.
func NewBackupKey() (*age.X25519Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generate backup key: %w", err)
	}
	return id, nil
}

// SealKey encrypts a backup key with a passphrase (age's scrypt recipient): KeyFile's
// content, which `age -d` opens with the passphrase.
func SealKey(id *age.X25519Identity, passphrase string) ([]byte, error) {
	rc, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("seal backup key: %w", err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rc)
	if err != nil {
		return nil, fmt.Errorf("seal backup key: %w", err)
	}
	fmt.Fprintf(w, "# webnovel-backup key: %s\n%s\n", id.Recipient(), id)
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal backup key: %w", err)
	}
	return buf.Bytes(), nil
}

// OpenKey decrypts KeyFile's content with the passphrase. A wrong passphrase is ErrWrongKey.
func OpenKey(sealed []byte, passphrase string) (*age.X25519Identity, error) {
	si, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("open backup key: %w", err)
	}
	r, err := IdentitiesOf(si).Decrypt(bytes.NewReader(sealed))
	if err != nil {
		return nil, fmt.Errorf("open backup key: %w", err)
	}
	ids, err := age.ParseIdentities(io.LimitReader(r, 1<<16))
	if err != nil || len(ids) != 1 {
		return nil, fmt.Errorf("open backup key: not one age identity inside")
	}
	x, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, fmt.Errorf("open backup key: not an X25519 identity")
	}
	return x, nil
}

// ReadPassphrase reads a passphrase from a file (its first line) or, when file is "", from
// the environment variable env. It is never taken from the command line, where other users
// of the machine can read it. "" means no passphrase was given.
func ReadPassphrase(file, env string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	data, err := readKeyFile(file)
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", fmt.Errorf("passphrase file %s: empty first line", file)
	}
	return line, nil
}

// RunKey is a run's ephemeral key: workers encrypt intermediate outputs (fixture chunks,
// archive parts) to its public half, so the staging area never holds plaintext; only the
// coordinator that made it, in memory, can read them back. A coordinator that dies takes it
// along: its successor redoes those outputs.
type RunKey struct{ id *age.X25519Identity }

// NewRunKey generates a run key.
func NewRunKey() (*RunKey, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generate run key: %w", err)
	}
	return &RunKey{id: id}, nil
}

// Recipient is the run key's public half, for tasks.
func (k *RunKey) Recipient() string { return k.id.Recipient().String() }

// Identities reads what was encrypted to Recipient.
func (k *RunKey) Identities() *Identities { return IdentitiesOf(k.id) }

// IsEncryptedFile reports whether the local file is an age file: by its name (NAME.age) or its
// first bytes.
func IsEncryptedFile(file string) bool {
	if strings.HasSuffix(file, Ext) {
		return true
	}
	f, err := storage.OpenRegular(file)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(f, head)
	return IsEncrypted(head[:n])
}

// keyFileWait bounds how long a key file that is a FIFO or a pipe may take to be opened by
// its writer and written to its end: one that nobody writes would hold the run for ever.
var keyFileWait = 30 * time.Second

// readKeyFile reads a key file the operator named: a file or a pipe (--identity
// <(pass show key)), but not an endless stream (/dev/zero) that would take the memory, nor a
// FIFO that nobody writes (keyFileWait). A name that does not open is not repeated: it may be
// the key or the passphrase itself, given where a file name belongs
// (WNB_AGE_IDENTITY_FILE=AGE-SECRET-KEY-1…).
func readKeyFile(path string) ([]byte, error) {
	deadline := time.Now().Add(keyFileWait)
	f, err := openKeyFile(path, deadline)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A pipe is read through the poller, which keeps the deadline; a regular file has none.
	_ = f.SetReadDeadline(deadline)
	data, err := storage.ReadLimited(f, maxKeyFileSize)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, notWritten(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// errNotWritten is a key file that is a FIFO or pipe whose writer did not come, or did not
// finish, within keyFileWait.
var errNotWritten = errors.New("a FIFO or pipe that nothing wrote to its end in time: give the key file, or start the process that writes it first")

// notWritten is errNotWritten for path.
func notWritten(path string) error {
	return fmt.Errorf("%s: %w (waited %s)", path, errNotWritten, keyFileWait)
}

// openKeyFile opens path, which may be a FIFO whose open waits for a writer: past deadline,
// the wait is ended (by opening the FIFO for writing, which releases it) and refused.
func openKeyFile(path string, deadline time.Time) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	done := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		done <- opened{f, err}
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case o := <-done:
		if o.err != nil {
			var pe *fs.PathError
			if errors.As(o.err, &pe) {
				o.err = pe.Err
			}
			return nil, fmt.Errorf("the file named does not open (%w); its name is not shown, in case it is a key or a passphrase given by mistake", o.err)
		}
		return o.f, nil
	case <-timer.C:
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode()&fs.ModeNamedPipe != 0 {
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close() // writes nothing: the open that waited reads an empty file, and is closed
		}
	}
	go func() { // the open, released or not, is closed when it returns
		if o := <-done; o.f != nil {
			o.f.Close()
		}
	}()
	return nil, notWritten(path)
}
