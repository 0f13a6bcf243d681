package encryption

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/cloudflare/circl/dh/x25519"
)

// sealWith encrypts plain to rc with age itself.
func sealWith(t testing.TB, rc age.Recipient, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rc)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openWith decrypts data with id through age itself.
func openWith(id age.Identity, data []byte) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

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
			open age.Identity
		}{
			{"circl wraps, age opens", sealWith(t, rc, plain), ageID},
			{"age wraps, circl opens", sealWith(t, ageID.Recipient(), plain), id},
			{"circl wraps, circl opens", sealWith(t, rc, plain), id},
		} {
			got, err := openWith(c.open, c.data)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s: %q, %v", c.name, got, err)
			}
		}
		var nomatch *age.NoIdentityMatchError
		if _, err := openWith(fastIdentity(other), sealWith(t, rc, plain)); !errors.As(err, &nomatch) {
			t.Fatalf("another key opened it: %v", err)
		}
		if _, err := openWith(other, sealWith(t, rc, plain)); !errors.As(err, &nomatch) {
			t.Fatalf("age's identity of another key opened it: %v", err)
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

// TestX25519Refuses: a low-order recipient key, and stanzas that are malformed, are errors
// as age makes them; a stanza of another type is not this key's.
func TestX25519Refuses(t *testing.T) {
	zero, err := age.ParseX25519Recipient(mustBech32(t, "age", make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fastRecipient(zero).Wrap(make([]byte, fileKeySize)); err == nil || !strings.Contains(err.Error(), "low-order") {
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

// mustBech32 encodes data as age does, by way of age: a key of known bytes.
func mustBech32(t *testing.T, hrp string, data []byte) string {
	t.Helper()
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	var groups []byte
	var acc, bits uint
	for _, b := range data {
		acc = acc<<8 | uint(b)
		for bits += 8; bits >= 5; bits -= 5 {
			groups = append(groups, byte(acc>>(bits-5)&31))
		}
	}
	if bits > 0 {
		groups = append(groups, byte(acc<<(5-bits)&31))
	}
	// The checksum (BIP 173).
	polymod := func(values []byte) uint32 {
		gen := []uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
		chk := uint32(1)
		for _, v := range values {
			top := chk >> 25
			chk = (chk&0x1ffffff)<<5 ^ uint32(v)
			for i := range 5 {
				if (top>>i)&1 == 1 {
					chk ^= gen[i]
				}
			}
		}
		return chk
	}
	var expanded []byte
	for _, c := range hrp {
		expanded = append(expanded, byte(c>>5))
	}
	expanded = append(expanded, 0)
	for _, c := range hrp {
		expanded = append(expanded, byte(c&31))
	}
	mod := polymod(append(append(expanded, groups...), 0, 0, 0, 0, 0, 0)) ^ 1
	s := hrp + "1"
	for _, g := range groups {
		s += string(charset[g])
	}
	for i := range 6 {
		s += string(charset[(mod>>(5*(5-i)))&31])
	}
	return s
}

func TestBech32Data(t *testing.T) {
	for range 20 {
		id, _ := age.GenerateX25519Identity()
		for _, c := range []struct{ s, hrp string }{{id.Recipient().String(), "age"}, {id.String(), "AGE-SECRET-KEY-"}} {
			data, err := bech32Data(c.s, c.hrp)
			if err != nil || len(data) != 32 {
				t.Fatalf("%.8s…: %d bytes, %v", c.s, len(data), err)
			}
			if again := mustBech32(t, strings.ToLower(c.hrp), data); again != strings.ToLower(c.s) {
				t.Fatalf("%.8s… does not encode back", c.s)
			}
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
