package encryption

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/cloudflare/circl/dh/x25519"
)

// onlyRecipient and onlyIdentity are sets of one key as given, without the swap to CIRCL that
// ParseRecipients and IdentitiesOf make: age's own types stay age's.
func onlyRecipient(rc age.Recipient) *Recipients { return &Recipients{list: []age.Recipient{rc}} }
func onlyIdentity(id age.Identity) *Identities   { return &Identities{list: []age.Identity{id}} }

// TestX25519Stanzas: what the CIRCL recipient wraps, age's own identity opens, and what age's
// recipient wraps, the CIRCL identity opens; a wrong key opens neither.
func TestX25519Stanzas(t *testing.T) {
	plain := []byte("pbkdf2_sha256$600000$salt$hash= reader@example.com")
	for range 20 {
		ageID, _ := age.GenerateX25519Identity()
		other, _ := age.GenerateX25519Identity()
		rc, id := fastRecipient(ageID.Recipient()), fastIdentity(ageID)
		if _, ok := rc.(*x25519Recipient); !ok {
			t.Fatalf("fastRecipient kept %T", rc)
		}
		if _, ok := id.(*x25519Identity); !ok {
			t.Fatalf("fastIdentity kept %T", id)
		}
		if got := id.(*x25519Identity).public; !bytes.Equal(got[:], rc.(*x25519Recipient).their[:]) {
			t.Fatal("the identity's public key is not its recipient's")
		}
		for _, c := range []struct {
			name string
			data []byte
			open *Identities
		}{
			{"circl wraps, age opens", seal(t, onlyRecipient(rc), plain), onlyIdentity(ageID)},
			{"age wraps, circl opens", seal(t, onlyRecipient(ageID.Recipient()), plain), onlyIdentity(id)},
			{"circl wraps, circl opens", seal(t, onlyRecipient(rc), plain), onlyIdentity(id)},
		} {
			got, err := open(c.open, c.data)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s: %q, %v", c.name, got, err)
			}
		}
		if _, err := open(onlyIdentity(fastIdentity(other)), seal(t, onlyRecipient(rc), plain)); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("another key opened it: %v", err)
		}
		if _, err := open(onlyIdentity(other), seal(t, onlyRecipient(rc), plain)); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("age's identity of another key opened it: %v", err)
		}
	}
}

// TestCirclKeysInUse: the recipients and identities every backup, restore and run key goes
// through are the CIRCL ones.
func TestCirclKeysInUse(t *testing.T) {
	rc, ids := keyPair(t)
	run, err := NewRunKey()
	if err != nil {
		t.Fatal(err)
	}
	runRc, err := RecipientsFromPublic([]string{run.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]any{
		"ParseRecipients": rc.list[0], "ReadIdentityFile": ids.list[0],
		"run key recipient": runRc.list[0], "run key identity": run.Identities().list[0],
	} {
		switch got.(type) {
		case *x25519Recipient, *x25519Identity:
		default:
			t.Errorf("%s gave %T, not CIRCL's", name, got)
		}
	}
}

// TestX25519MatchesCryptoECDH checks CIRCL's X25519 against the standard library's on
// random keys: the same public keys, the same shared secrets.
func TestX25519MatchesCryptoECDH(t *testing.T) {
	for range 100 {
		a, _ := ecdh.X25519().GenerateKey(rand.Reader)
		b, _ := ecdh.X25519().GenerateKey(rand.Reader)
		var sa, pa, pb, shared x25519.Key
		copy(sa[:], a.Bytes())
		copy(pb[:], b.PublicKey().Bytes())
		x25519.KeyGen(&pa, &sa)
		if !bytes.Equal(pa[:], a.PublicKey().Bytes()) {
			t.Fatal("public keys differ")
		}
		want, _ := a.ECDH(b.PublicKey())
		if !x25519.Shared(&shared, &sa, &pb) || !bytes.Equal(shared[:], want) {
			t.Fatal("shared secrets differ")
		}
	}
}

// TestEphemeralPublicKey checks the fixed-base public key Wrap sends against the standard
// library's X25519, on random secrets and on the edges of clamping.
func TestEphemeralPublicKey(t *testing.T) {
	secrets := [][]byte{make([]byte, x25519.Size), bytes.Repeat([]byte{0xff}, x25519.Size)}
	for range 200 {
		s := make([]byte, x25519.Size)
		rand.Read(s)
		secrets = append(secrets, s)
	}
	for _, s := range secrets {
		std, err := ecdh.X25519().NewPrivateKey(s)
		if err != nil {
			t.Fatal(err)
		}
		var secret, got x25519.Key
		copy(secret[:], s)
		if err := publicKey(&got, &secret); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:], std.PublicKey().Bytes()) {
			t.Fatalf("secret %x: public key %x, want %x", s, got, std.PublicKey().Bytes())
		}
	}
}

// TestX25519Refuses: a low-order recipient key, and stanzas that are malformed, are errors
// as age makes them; a stanza of another type is not this key's.
func TestX25519Refuses(t *testing.T) {
	if _, err := (&x25519Recipient{}).Wrap(make([]byte, fileKeySize)); err == nil || !strings.Contains(err.Error(), "low-order") {
		t.Fatalf("a low-order recipient: %v", err)
	}
	ageID, _ := age.GenerateX25519Identity()
	id := fastIdentity(ageID)
	good, err := fastRecipient(ageID.Recipient()).Wrap(make([]byte, fileKeySize))
	if err != nil {
		t.Fatal(err)
	}
	arg := good[0].Args[0]
	for _, c := range []struct {
		name  string
		s     age.Stanza
		wrong bool // ErrIncorrectIdentity rather than another error
	}{
		{"another type", age.Stanza{Type: "scrypt", Args: []string{"salt", "18"}}, true},
		{"two arguments", age.Stanza{Type: "X25519", Args: []string{arg, arg}, Body: good[0].Body}, false},
		{"a newline in the key", age.Stanza{Type: "X25519", Args: []string{arg[:20] + "\n" + arg[20:]}, Body: good[0].Body}, false},
		{"a short key", age.Stanza{Type: "X25519", Args: []string{arg[:40]}, Body: good[0].Body}, false},
		{"a low-order key", age.Stanza{Type: "X25519", Args: []string{stanzaEncoding.EncodeToString(make([]byte, 32))}, Body: good[0].Body}, false},
		{"a short body", age.Stanza{Type: "X25519", Args: []string{arg}, Body: good[0].Body[:20]}, false},
		{"a changed body", age.Stanza{Type: "X25519", Args: []string{arg}, Body: append([]byte{good[0].Body[0] ^ 1}, good[0].Body[1:]...)}, true},
	} {
		_, err := id.Unwrap([]*age.Stanza{&c.s})
		if err == nil || errors.Is(err, age.ErrIncorrectIdentity) != c.wrong {
			t.Errorf("%s: %v", c.name, err)
		}
		if _, ageErr := ageID.Unwrap([]*age.Stanza{&c.s}); (ageErr == nil) != (err == nil) || errors.Is(ageErr, age.ErrIncorrectIdentity) != c.wrong {
			t.Errorf("%s: age says %v, this says %v", c.name, ageErr, err)
		}
	}
}

// TestBech32Data: the raw keys read out of age's strings belong together; malformed ones are
// refused.
func TestBech32Data(t *testing.T) {
	for range 20 {
		id, _ := age.GenerateX25519Identity()
		public, err := bech32Data(id.Recipient().String(), "age")
		if err != nil || len(public) != 32 {
			t.Fatalf("recipient: %d bytes, %v", len(public), err)
		}
		secret, err := bech32Data(id.String(), "AGE-SECRET-KEY-")
		if err != nil || len(secret) != 32 {
			t.Fatalf("identity: %d bytes, %v", len(secret), err)
		}
		// Read right, the secret key gives the public key read.
		var s, p x25519.Key
		copy(s[:], secret)
		x25519.KeyGen(&p, &s)
		if !bytes.Equal(p[:], public) {
			t.Fatal("the secret key read does not give the public key read")
		}
	}
	for _, bad := range []string{"", "age1", "age1qqqqqb", "x1qqqqqqqqqq", "age1qqqqqqqqqqqqbqqqqqq"} {
		if data, err := bech32Data(bad, "age"); err == nil && len(data) == 32 {
			t.Errorf("%q gave a key", bad)
		}
	}
}

// TestStockAgeOpensCirclStanzas: the stock age command decrypts what the CIRCL recipient
// wrapped (skipped where age is not installed; .ci/run installs it).
func TestStockAgeOpensCirclStanzas(t *testing.T) {
	if _, err := exec.LookPath("age"); err != nil {
		if os.Getenv("WNB_REQUIRE_POSTGRES") != "" {
			t.Fatal("the age command is missing: apt-get install -y age")
		}
		t.Skip("the age command is missing")
	}
	keyFile, recipient := newKey(t)
	rc, err := ParseRecipients([]string{recipient}, "test")
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("unpublished chapter "), 10000)
	file := filepath.Join(t.TempDir(), "chapter.age")
	if err := os.WriteFile(file, seal(t, rc, plain), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("age", "-d", "-i", keyFile, file).Output()
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("age -d: %d bytes, %v", len(out), err)
	}
}

// BenchmarkX25519Wrap compares age's X25519 recipient and identity with CIRCL's, per file
// key (go test ./internal/encryption -run '^$' -bench X25519).
func BenchmarkX25519Wrap(b *testing.B) {
	id, _ := age.GenerateX25519Identity()
	fileKey := make([]byte, fileKeySize)
	for _, c := range []struct {
		name string
		rc   age.Recipient
		id   age.Identity
	}{{"age", id.Recipient(), id}, {"circl", fastRecipient(id.Recipient()), fastIdentity(id)}} {
		b.Run(c.name+"/wrap", func(b *testing.B) {
			for range b.N {
				if _, err := c.rc.Wrap(fileKey); err != nil {
					b.Fatal(err)
				}
			}
		})
		stanzas, _ := c.rc.Wrap(fileKey)
		b.Run(c.name+"/unwrap", func(b *testing.B) {
			for range b.N {
				if _, err := c.id.Unwrap(stanzas); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzX25519Unwrap feeds stanzas read from untrusted backups to the CIRCL identity: it never
// panics, and it opens exactly what age's own identity opens, to the same file key.
func FuzzX25519Unwrap(f *testing.F) {
	ageID, _ := age.GenerateX25519Identity()
	good, _ := fastRecipient(ageID.Recipient()).Wrap(make([]byte, fileKeySize))
	f.Add(good[0].Type, good[0].Args[0], good[0].Body)
	f.Add("X25519", "", []byte{})
	f.Add("scrypt", "c2FsdA", []byte("body"))
	id := fastIdentity(ageID)
	f.Fuzz(func(t *testing.T, typ, arg string, body []byte) {
		s := &age.Stanza{Type: typ, Args: []string{arg}, Body: body}
		got, err := id.Unwrap([]*age.Stanza{s})
		want, ageErr := ageID.Unwrap([]*age.Stanza{s})
		if (err == nil) != (ageErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("this: %x, %v; age: %x, %v", got, err, want, ageErr)
		}
	})
}
