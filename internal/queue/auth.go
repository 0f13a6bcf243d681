package queue

import (
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/webnovel/webnovel-backup/storage"
)

// Auth is how a process authenticates to NATS and secures the connection. Every field is
// optional; set the ones the cluster asks for.
type Auth struct {
	// CredsFile is a decentralized-auth credentials file (JWT and nkey seed).
	CredsFile string
	// NkeyFile is a file holding an nkey seed.
	NkeyFile string
	User     string
	Password string
	Token    string
	// CAFile verifies the server's certificate; CertFile and KeyFile present a client
	// certificate (mutual TLS).
	CAFile   string
	CertFile string
	KeyFile  string
}

// maxAuthFileSize bounds a credentials, key or certificate file: a few kilobytes each.
const maxAuthFileSize = 1 << 20

// checkFiles refuses, by name, a file setting that is not a regular file of at most
// maxAuthFileSize bytes: the NATS client reads each whole, and a FIFO would hold it for ever,
// /dev/zero until memory runs out.
func (a Auth) checkFiles() error {
	for _, f := range []struct{ flag, path string }{
		{"--nats-creds", a.CredsFile}, {"--nats-nkey", a.NkeyFile}, {"--nats-ca", a.CAFile},
		{"--nats-cert", a.CertFile}, {"--nats-key", a.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		fi, err := os.Stat(f.path)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", f.flag, err)
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s %s: not a regular file (%s)", f.flag, f.path, storage.KindOf(fi.Mode()))
		case fi.Size() > maxAuthFileSize:
			return fmt.Errorf("%s %s: %d bytes, larger than such a file holds (%d)", f.flag, f.path, fi.Size(), maxAuthFileSize)
		}
	}
	return nil
}

// Options turns the settings into connection options, checking that they make sense together.
func (a Auth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	n := 0
	if (a.CertFile == "") != (a.KeyFile == "") {
		return nil, errors.New("nats: a client certificate needs both --nats-cert and --nats-key")
	}
	if err := a.checkFiles(); err != nil {
		return nil, err
	}
	if a.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(a.CredsFile))
		n++
	}
	if a.NkeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(a.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey %s: %w", a.NkeyFile, err)
		}
		opts = append(opts, o)
		n++
	}
	if a.User != "" || a.Password != "" {
		if a.User == "" || a.Password == "" {
			return nil, errors.New("nats: a user needs a password and a password needs a user")
		}
		opts = append(opts, nats.UserInfo(a.User, a.Password))
		n++
	}
	if a.Token != "" {
		opts = append(opts, nats.Token(a.Token))
		n++
	}
	if n > 1 {
		return nil, errors.New("nats: choose one of credentials file, nkey, user/password or token")
	}
	if a.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.CAFile))
	}
	if a.CertFile != "" {
		opts = append(opts, nats.ClientCert(a.CertFile, a.KeyFile))
	}
	return opts, nil
}
