package encryption_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/webnovel/webnovel-backup/internal/encryption"
)

// The floor of an encrypted backup's cost on this machine, one core (by hand:
// go test ./internal/encryption -run '^$' -bench Floor): per byte, SHA-256 and
// ChaCha20-Poly1305 in age's 64 KiB chunks; per file, age's header (one X25519 exchange to
// encrypt to a recipient, one to decrypt, plus the ephemeral key's generation when
// encrypting).

func BenchmarkFloorSHA256(b *testing.B) {
	buf := make([]byte, 64<<10)
	h := sha256.New()
	b.SetBytes(int64(len(buf)))
	for range b.N {
		h.Write(buf)
	}
}

func BenchmarkFloorChaCha20Poly1305(b *testing.B) {
	key := make([]byte, chacha20poly1305.KeySize)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	out := make([]byte, 0, len(buf)+aead.Overhead())
	nonce := make([]byte, chacha20poly1305.NonceSize)
	b.SetBytes(int64(len(buf)))
	for range b.N {
		out = aead.Seal(out[:0], nonce, buf, nil)
	}
}

// BenchmarkFloorAgeStream is age's stream alone on 1 MB (no hashing): its per-byte cost plus
// one header per op.
func BenchmarkFloorAgeStream(b *testing.B) {
	id, _ := age.GenerateX25519Identity()
	rc, err := encryption.ParseRecipients([]string{id.Recipient().String()}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1<<20)
	var sealed bytes.Buffer
	b.Run("encrypt", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			sealed.Reset()
			w, _ := rc.Encrypt(&sealed)
			w.Write(data)
			w.Close()
		}
	})
	ids := encryption.IdentitiesOf(id)
	b.Run("decrypt", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			r, err := ids.Decrypt(bytes.NewReader(sealed.Bytes()))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, r)
		}
	})
}

// BenchmarkFloorAgeHeader is age's per-file cost: an empty file encrypted and decrypted.
func BenchmarkFloorAgeHeader(b *testing.B) {
	id, _ := age.GenerateX25519Identity()
	rc, err := encryption.ParseRecipients([]string{id.Recipient().String()}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	var sealed bytes.Buffer
	b.Run("encrypt", func(b *testing.B) {
		for range b.N {
			sealed.Reset()
			w, _ := rc.Encrypt(&sealed)
			w.Close()
		}
	})
	ids := encryption.IdentitiesOf(id)
	b.Run("decrypt", func(b *testing.B) {
		for range b.N {
			r, err := ids.Decrypt(bytes.NewReader(sealed.Bytes()))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, r)
		}
	})
}
