package encryption

import (
	"errors"

	"filippo.io/age"
)

// JoinIdentities is every identity of the sets, in order (several --identity files). Nil
// sets are skipped; none at all is nil.
func JoinIdentities(sets ...*Identities) *Identities {
	var out *Identities
	for _, s := range sets {
		if s == nil {
			continue
		}
		if out == nil {
			out = &Identities{}
		}
		out.list = append(out.list, s.list...)
	}
	return out
}

// Recipients are the public keys of the identities, to encrypt to them (a round trip that
// must read back what it wrote). Only age's own keys (X25519, hybrid) are derived; an SSH
// identity is refused.
func (i *Identities) Recipients() (*Recipients, error) {
	if i == nil || len(i.list) == 0 {
		return nil, ErrNoIdentity
	}
	var public []string
	for _, id := range i.list {
		switch v := id.(type) {
		case *x25519Identity:
			public = append(public, v.age.Recipient().String())
		case *age.X25519Identity:
			public = append(public, v.Recipient().String())
		case *age.HybridIdentity:
			public = append(public, v.Recipient().String())
		default:
			return nil, errors.New("the public key of a non-age identity (an SSH key?) cannot be derived: use an age key (age-keygen)")
		}
	}
	return ParseRecipients(public, "identity")
}

// PassphraseIdentities opens what was encrypted to age's scrypt recipient with passphrase (an
// archive of a passphrase backup, whose key is the passphrase itself).
func PassphraseIdentities(passphrase string) (*Identities, error) {
	si, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, err
	}
	return IdentitiesOf(si), nil
}
