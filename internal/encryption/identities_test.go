package encryption

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"filippo.io/age"
)

// Joined identity sets decrypt what any of them can; Recipients encrypts to every one of
// them, so each reads it back alone.
func TestJoinIdentitiesAndRecipients(t *testing.T) {
	a, _ := age.GenerateX25519Identity()
	b, _ := age.GenerateX25519Identity()
	joined := JoinIdentities(nil, IdentitiesOf(a), IdentitiesOf(b))
	rc, err := joined.Recipients()
	if err != nil {
		t.Fatal(err)
	}
	if !rc.Same([]string{a.Recipient().String(), b.Recipient().String()}) {
		t.Fatalf("recipients %v", rc.Public())
	}
	var buf bytes.Buffer
	w, _ := rc.Encrypt(&buf)
	w.Write([]byte("secret"))
	w.Close()
	for _, ids := range []*Identities{IdentitiesOf(a), IdentitiesOf(b), joined} {
		r, err := ids.Decrypt(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(r); string(got) != "secret" {
			t.Fatalf("read %q", got)
		}
	}
	if JoinIdentities(nil, nil) != nil {
		t.Fatal("no identities joined into some")
	}
	if _, err := (*Identities)(nil).Recipients(); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("recipients of no identity: %v", err)
	}
}
