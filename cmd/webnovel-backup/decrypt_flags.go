package main

import (
	"context"
	"os"

	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/encryption"
)

// envIdentityFile names the identity file that opens encrypted backups (the passphrase's
// variable, envPassphrase, is shared with backup's encryption flags).
const envIdentityFile = "WNB_AGE_IDENTITY_FILE"

// decryptOptions are the flags that open an encrypted backup (restore, verify,
// test-backup-restore, worker). Keys are read from files or the environment, never taken on
// the command line, where other users of the machine can read them.
type decryptOptions struct {
	identityFiles  []string
	passphraseFile string
}

// AddFlags adds --identity and, with passphrase, --passphrase-file to f.
func (d *decryptOptions) AddFlags(f *pflag.FlagSet, passphrase bool) {
	f.StringArrayVar(&d.identityFiles, "identity", nil, "age identity `FILE` (age-keygen's key file, or an SSH private key) that decrypts an encrypted backup; repeatable (env "+envIdentityFile+")")
	if passphrase {
		f.StringVar(&d.passphraseFile, "passphrase-file", "", "`FILE` whose first line is the passphrase of a backup encrypted with --passphrase-file (env "+envPassphrase+")")
	}
}

// identities reads the --identity files, else the one WNB_AGE_IDENTITY_FILE names; nil when
// neither is given. A file that cannot be read is a usage error naming it (not its content).
func (d *decryptOptions) identities() (*encryption.Identities, error) {
	files, from := d.identityFiles, "--identity"
	if len(files) == 0 {
		if env := os.Getenv(envIdentityFile); env != "" {
			files, from = []string{env}, envIdentityFile
		}
	}
	var sets []*encryption.Identities
	for _, f := range files {
		ids, err := encryption.ReadIdentityFile(f)
		if err != nil {
			return nil, usageErrorf("%s: %w", from, err) // the error names the file once it opened
		}
		sets = append(sets, ids)
	}
	return encryption.JoinIdentities(sets...), nil
}

// passphrase reads --passphrase-file, else WNB_AGE_PASSPHRASE ("" when neither is given).
func (d *decryptOptions) passphrase() (string, error) {
	p, err := encryption.ReadPassphrase(d.passphraseFile, envPassphrase)
	if err != nil {
		return "", usageErrorf("--passphrase-file: %w", err)
	}
	return p, nil
}

// keysFor reads the keys given for the backup at src: the identities, and a passphrase
// backup's key opened with the passphrase (so that in-process workers hold it too).
func (d *decryptOptions) keysFor(ctx context.Context, src string) (*encryption.Identities, string, error) {
	ids, err := d.identities()
	if err != nil {
		return nil, "", err
	}
	pass, err := d.passphrase()
	if err != nil || pass == "" {
		return ids, pass, err
	}
	key, err := coordinator.OpenBackupKey(ctx, src, pass)
	if err != nil {
		return nil, "", err
	}
	return encryption.JoinIdentities(ids, key), pass, nil
}
