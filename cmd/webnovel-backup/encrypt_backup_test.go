package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
)

func newRecipient(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

// Encryption flags that contradict each other, or --checksum with encryption, are usage
// errors naming the flags, and nothing is written; a bad recipient names where it came from
// and never echoes a secret key.
func TestBackupEncryptionUsageErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("NATS_URL", "")
	t.Setenv(envRecipients, "")
	t.Setenv(envPassphrase, "")
	rc := newRecipient(t)
	pass := filepath.Join(dir, "pass.txt")
	os.WriteFile(pass, []byte("a passphrase\n"), 0o600)
	secret := filepath.Join(dir, "secret.txt")
	os.WriteFile(secret, []byte("AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQSWHF0H\n"), 0o600)
	empty := filepath.Join(dir, "team.txt")
	os.WriteFile(empty, []byte("# the ops team, to be filled in\n"), 0o600)
	badLine := filepath.Join(dir, "bad.txt")
	os.WriteFile(badLine, []byte("# ops\n"+rc+"\nage1typo\n"), 0o600)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"checksum and recipient", nil, []string{"--checksum", "--recipient", rc}, []string{"--checksum", "--recipient"}},
		{"checksum and passphrase", nil, []string{"--checksum", "--passphrase-file", pass}, []string{"--checksum", "--passphrase-file"}},
		{"recipient and passphrase", nil, []string{"--recipient", rc, "--passphrase-file", pass}, []string{"--recipient", "--passphrase-file"}},
		{"env recipients and env passphrase", map[string]string{envRecipients: rc, envPassphrase: "x"}, nil, []string{envRecipients, envPassphrase}},
		{"bad recipient", nil, []string{"--recipient", "age1nope"}, []string{"--recipient", "malformed"}},
		{"secret key as recipient", nil, []string{"--recipients-file", secret}, []string{"secret key", "age-keygen -y"}},
		{"missing recipients file", nil, []string{"--recipients-file", filepath.Join(dir, "none")}, []string{"--recipients-file", "does not open"}},
		// a file is read on its own: its name and the line, even beside good recipients
		{"empty recipients file", nil, []string{"--recipient", rc, "--recipients-file", empty}, []string{"--recipients-file " + empty, "no recipients"}},
		{"bad line in a recipients file", nil, []string{"--recipient", rc, "--recipients-file", badLine}, []string{"--recipients-file " + badLine, "recipient 3", "malformed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			work := t.TempDir()
			code, out := cli(t, work, append([]string{"backup"}, tt.args...)...)
			if code != outcome.CodeUsage {
				t.Fatalf("exit %d, want %d:\n%s", code, outcome.CodeUsage, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "AGE-SECRET-KEY-1") {
				t.Errorf("output echoes a secret key:\n%s", out)
			}
			if entries, _ := os.ReadDir(work); len(entries) > 0 {
				t.Fatalf("a usage error wrote %v", entries)
			}
		})
	}
	code, out := cli(t, dir, "backup", "--help")
	if code != outcome.CodeOK || !strings.Contains(out, "--recipient") || !strings.Contains(out, "File names") {
		t.Fatalf("backup --help (exit %d) does not document encryption or say names stay visible:\n%s", code, out)
	}
}

// WNB_AGE_RECIPIENTS (comma and newline separated) and --recipients-file encrypt a backup to
// every recipient they list.
func TestBackupRecipientsFromEnvironmentAndFile(t *testing.T) {
	dir := sitePlatform(t)
	t.Setenv(envPassphrase, "")
	a, b, c := newRecipient(t), newRecipient(t), newRecipient(t)
	file := filepath.Join(t.TempDir(), "recipients.txt")
	os.WriteFile(file, []byte("# team\n"+c+"\n"), 0o600)
	tests := []struct {
		name string
		env  string
		args []string
		want []string
	}{
		{"environment", a + ",\n" + b, nil, []string{a, b}},
		{"file", "", []string{"--recipients-file", file}, []string{c}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envRecipients, tt.env)
			into := "enc" + string(rune('0'+i))
			code, out := cli(t, dir, append([]string{"backup", "--skip-files", "--backup-dir", into}, tt.args...)...)
			if code != outcome.CodeOK {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			m, err := layout.ReadMetadata(onlyBackup(t, filepath.Join(dir, into)))
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string(nil), tt.want...)
			if m.Encryption == nil || len(m.Encryption.Recipients) != len(want) {
				t.Fatalf("metadata encryption %+v, want recipients %v", m.Encryption, want)
			}
			for _, w := range want {
				if !strings.Contains(strings.Join(m.Encryption.Recipients, " "), w) {
					t.Errorf("recipient %s missing from %v", w, m.Encryption.Recipients)
				}
			}
			if !strings.HasSuffix(m.Models[0].File, ".age") {
				t.Errorf("fixture %s is not encrypted", m.Models[0].File)
			}
		})
	}
}

// An SSH ed25519 public key in a recipients file encrypts a backup that the stock age command
// decrypts with the matching private key.
func TestBackupToSSHRecipient(t *testing.T) {
	dir := sitePlatform(t)
	t.Setenv(envPassphrase, "")
	t.Setenv(envRecipients, "")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	idFile, rcFile := filepath.Join(keys, "id_ed25519"), filepath.Join(keys, "recipients.txt")
	os.WriteFile(idFile, pem.EncodeToMemory(block), 0o600)
	os.WriteFile(rcFile, ssh.MarshalAuthorizedKey(sshPub), 0o600)
	code, out := cli(t, dir, "backup", "--skip-files", "--models", "accounts.User", "--backup-dir", "ssh", "--recipients-file", rcFile)
	if code != outcome.CodeOK {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	b := onlyBackup(t, filepath.Join(dir, "ssh"))
	m, err := layout.ReadMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Encryption == nil || !strings.HasPrefix(m.Encryption.Recipients[0], "ssh-ed25519 ") {
		t.Fatalf("metadata encryption %+v", m.Encryption)
	}
	if _, err := exec.LookPath("age"); err != nil {
		t.Fatal("the age command is not installed (Debian's age package)")
	}
	plain, err := exec.Command("age", "-d", "-i", idFile, filepath.Join(b, m.Models[0].File)).Output()
	if err != nil || !strings.Contains(string(plain), `"model": "accounts.user"`) {
		t.Fatalf("age -d -i id_ed25519 %s: %v\n%.200s", m.Models[0].File, err, plain)
	}
}
