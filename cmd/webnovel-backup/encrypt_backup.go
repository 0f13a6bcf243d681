package main

import (
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/encryption"
)

// Environment variables of backup's encryption.
const (
	envRecipients = "WNB_AGE_RECIPIENTS"
	envPassphrase = "WNB_AGE_PASSPHRASE"
)

// encryptFlags are backup's encryption flags. The passphrase is read from a file or the
// environment, never from the command line, where other users of the machine see it.
type encryptFlags struct {
	recipients      []string
	recipientsFiles []string
	passphraseFile  string
}

// AddFlags adds the encryption flags to f.
func (e *encryptFlags) AddFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&e.recipients, "recipient", nil, "encrypt every fixture and file with age to this public `key` (age1… or an SSH public key; repeatable; also "+envRecipients+", comma or newline separated). File names, sizes and counts stay visible; only the content is encrypted. The secret key is needed to restore: keep it off this host")
	f.StringArrayVar(&e.recipientsFiles, "recipients-file", nil, "encrypt to the recipients listed in this `file` (age's recipients format, one per line; repeatable)")
	f.StringVar(&e.passphraseFile, "passphrase-file", "", "encrypt with a passphrase read from the first line of this `file` (or "+envPassphrase+"): the backup's key is sealed with it into "+encryption.KeyFile+". File names stay visible")
}

// parse reads the recipients or the passphrase the flags and the environment give; neither
// (nil, "") means an unencrypted backup. Both kinds together are a usage error naming them.
// Each source is read on its own, so an error names the flag or the file and its line, and
// a recipients file that lists nobody is refused rather than passed over.
func (e *encryptFlags) parse(checksum bool) (*encryption.Recipients, string, error) {
	var sources []recipientSource
	if len(e.recipients) > 0 {
		sources = append(sources, recipientSource{e.recipients, "--recipient"})
	}
	for _, file := range e.recipientsFiles {
		lines, err := encryption.ReadRecipientsFile(file)
		if err != nil {
			return nil, "", usageErrorf("--recipients-file: %v", err) // the error names the file once it opened
		}
		sources = append(sources, recipientSource{lines, "--recipients-file " + file})
	}
	if env := os.Getenv(envRecipients); env != "" && len(sources) == 0 {
		sources = append(sources, recipientSource{strings.FieldsFunc(env, func(r rune) bool { return r == ',' || r == '\n' }), envRecipients})
	}
	passphrase, err := encryption.ReadPassphrase(e.passphraseFile, envPassphrase)
	if err != nil {
		return nil, "", usageErrorf("--passphrase-file: %v", err)
	}
	switch {
	case len(sources) > 0 && passphrase != "":
		return nil, "", usageErrorf("%s and a passphrase (--passphrase-file or %s) contradict each other: give one of the two", sources[0].from, envPassphrase)
	case (len(sources) > 0 || passphrase != "") && checksum:
		return nil, "", usageErrorf("--checksum cannot be used with encryption (--recipient, --recipients-file, %s, --passphrase-file, %s): the base's plaintext sums are encrypted", envRecipients, envPassphrase)
	case len(sources) == 0:
		return nil, passphrase, nil
	}
	var all []*encryption.Recipients
	for _, src := range sources {
		rc, err := encryption.ParseRecipients(src.lines, src.from)
		if err != nil {
			return nil, "", usageErrorf("%v", err)
		}
		all = append(all, rc)
	}
	return encryption.JoinRecipients(all...), "", nil
}

// recipientSource is one place recipients were given: the --recipient flags, a recipients
// file, or the environment.
type recipientSource struct {
	lines []string
	from  string
}
