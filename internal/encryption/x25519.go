package encryption

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/edwards25519"
	"github.com/cloudflare/circl/dh/x25519"
	"golang.org/x/crypto/chacha20poly1305"
)

// age's X25519 recipient and identity, the same stanzas byte for byte (age-encryption.org/v1,
// "X25519"), with the X25519 function from CIRCL instead of x/crypto's curve25519. Every file
// of an encrypted folder backup has its own header, so this exchange is paid once per file:
// x/crypto builds a crypto/ecdh private key on each call, whose eager public key doubles the
// work (four Montgomery ladders to wrap a file key, two to unwrap it); CIRCL's assembly takes
// a third of that time (BenchmarkX25519Wrap). The stanza's key schedule (HKDF-SHA-256, then
// ChaCha20-Poly1305 with a zero nonce under a key used once) is age's, through the standard
// libraries; age itself still writes the header, its MAC and the payload, and reads them.
// The ephemeral public key comes from edwards25519's fixed-base multiplication (precomputed
// tables), mapped to the Montgomery curve as age does for SSH keys: the same key as X25519
// with the base point, a third faster than CIRCL's ladder (TestEphemeralPublicKey).
// age.X25519Identity opens what x25519Recipient wraps and the reverse (TestX25519Stanzas),
// and so does the stock age command (TestStockAgeOpensCirclStanzas).

const x25519Label = "age-encryption.org/v1/X25519"

// fileKeySize is the size of age's file key.
const fileKeySize = 16

// stanzaEncoding is age's base64 for stanza arguments.
var stanzaEncoding = base64.RawStdEncoding

// x25519Recipient wraps file keys to one X25519 public key.
type x25519Recipient struct {
	their x25519.Key
}

// fastRecipient is rc with CIRCL's X25519 when rc is an X25519 recipient, else rc.
func fastRecipient(rc age.Recipient) age.Recipient {
	x, ok := rc.(*age.X25519Recipient)
	if !ok {
		return rc
	}
	key, ok := rawKey(x.String(), "age")
	if !ok {
		return rc // cannot happen for a key age parsed; age's own recipient then
	}
	return &x25519Recipient{their: key}
}

// Wrap is age's X25519Recipient.Wrap.
func (r *x25519Recipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	var ephemeral, ours, shared x25519.Key
	if _, err := rand.Read(ephemeral[:]); err != nil {
		return nil, err
	}
	if err := publicKey(&ours, &ephemeral); err != nil {
		return nil, err
	}
	if !x25519.Shared(&shared, &ephemeral, &r.their) || isZero(shared[:]) {
		return nil, errors.New("invalid X25519 recipient: low-order point")
	}
	key, err := wrappingKey(shared[:], ours[:], r.their[:])
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, err
	}
	// A zero nonce, as age: the key is derived from a fresh ephemeral key, used once.
	body := aead.Seal(nil, make([]byte, chacha20poly1305.NonceSize), fileKey, nil)
	return []*age.Stanza{{Type: "X25519", Args: []string{stanzaEncoding.EncodeToString(ours[:])}, Body: body}}, nil
}

// publicKey sets public to X25519(secret, 9): the clamped secret times edwards25519's base
// point, whose Montgomery u-coordinate is 9.
func publicKey(public, secret *x25519.Key) error {
	s, err := edwards25519.NewScalar().SetBytesWithClamping(secret[:])
	if err != nil {
		return err
	}
	copy(public[:], new(edwards25519.Point).ScalarBaseMult(s).BytesMontgomery())
	return nil
}

// x25519Identity unwraps file keys wrapped to its public key.
type x25519Identity struct {
	secret, public x25519.Key
	// age is the same key as age parsed it, which tells its recipient.
	age *age.X25519Identity
}

// fastIdentity is id with CIRCL's X25519 when id is an X25519 identity, else id.
func fastIdentity(id age.Identity) age.Identity {
	x, ok := id.(*age.X25519Identity)
	if !ok {
		return id
	}
	key, ok := rawKey(x.String(), "AGE-SECRET-KEY-")
	if !ok {
		return id
	}
	i := &x25519Identity{age: x, secret: key}
	x25519.KeyGen(&i.public, &i.secret)
	return i
}

// rawKey is the 32 bytes of a key that age wrote in Bech32 with human-readable part hrp.
func rawKey(s, hrp string) (key x25519.Key, ok bool) {
	data, err := bech32Data(s, hrp)
	if err != nil || len(data) != x25519.Size {
		return key, false
	}
	copy(key[:], data)
	return key, true
}

// Unwrap is age's X25519Identity.Unwrap: the file key from the first X25519 stanza this key
// opens, age.ErrIncorrectIdentity if none.
func (i *x25519Identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		fileKey, err := i.unwrap(s)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			continue
		}
		return fileKey, err
	}
	return nil, age.ErrIncorrectIdentity
}

func (i *x25519Identity) unwrap(s *age.Stanza) ([]byte, error) {
	if s.Type != "X25519" {
		return nil, age.ErrIncorrectIdentity
	}
	if len(s.Args) != 1 {
		return nil, errors.New("invalid X25519 recipient block")
	}
	theirs, err := stanzaEncoding.Strict().DecodeString(s.Args[0])
	if err == nil && strings.ContainsAny(s.Args[0], "\n\r") {
		err = errors.New("unexpected newline character") // which DecodeString would skip
	}
	if err != nil {
		return nil, fmt.Errorf("failed to parse X25519 recipient: %v", err)
	}
	if len(theirs) != x25519.Size {
		return nil, errors.New("invalid X25519 recipient block")
	}
	var ephemeral, shared x25519.Key
	copy(ephemeral[:], theirs)
	if !x25519.Shared(&shared, &i.secret, &ephemeral) || isZero(shared[:]) {
		return nil, errors.New("invalid X25519 recipient: low-order point")
	}
	key, err := wrappingKey(shared[:], theirs, i.public[:])
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, err
	}
	if len(s.Body) != fileKeySize+aead.Overhead() {
		return nil, errors.New("invalid X25519 recipient block: incorrect file key size")
	}
	fileKey, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), s.Body, nil)
	if err != nil {
		return nil, age.ErrIncorrectIdentity
	}
	return fileKey, nil
}

// wrappingKey is the stanza's key: HKDF-SHA-256 of the shared secret, salted with the
// ephemeral public key and the recipient's.
func wrappingKey(shared, ephemeral, recipient []byte) ([]byte, error) {
	salt := append(append(make([]byte, 0, 2*x25519.Size), ephemeral...), recipient...)
	return hkdf.Key(sha256.New, shared, salt, x25519Label, chacha20poly1305.KeySize)
}

func isZero(b []byte) bool {
	return subtle.ConstantTimeCompare(b, make([]byte, len(b))) == 1
}

// bech32Data is the data of a Bech32 string that age has already parsed (and so checked),
// with human-readable part hrp: its 5-bit groups, less the 6 of the checksum, as bytes.
func bech32Data(s, hrp string) ([]byte, error) {
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	s = strings.ToLower(s)
	rest, ok := strings.CutPrefix(s, strings.ToLower(hrp)+"1")
	if !ok || len(rest) < 6 {
		return nil, errors.New("not a Bech32 key of this type")
	}
	rest = rest[:len(rest)-6]
	var out []byte
	var acc, bits uint
	for _, c := range []byte(rest) {
		v := strings.IndexByte(charset, c)
		if v < 0 {
			return nil, errors.New("not a Bech32 key")
		}
		acc = acc<<5 | uint(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if bits >= 5 || acc&(1<<bits-1) != 0 {
		return nil, errors.New("not a Bech32 key: bad padding")
	}
	return out, nil
}
