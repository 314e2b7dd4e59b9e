package sealcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"filippo.io/age"
)

const keygenSynopsis = "cove keygen [-o FILE]"

const keygenDescription = `
Keygen generates an age X25519 identity for receiving job outputs. With -o,
it writes the identity file to FILE, readable only by its owner, and prints
the public recipient (age1...) to standard output. Without -o, it writes the
identity file to standard output and the recipient to standard error, like
age-keygen. Keygen does not overwrite an existing FILE.`

// Keygen implements "cove keygen": it generates an age X25519 identity and
// prints its recipient. It does not block, so ctx is unused.
func Keygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("cove keygen", flag.ContinueOnError)
	flags.SetOutput(stderr)
	out := flags.String("o", "", "`path` of the identity file to create (default: standard output)")
	flags.Usage = usageFunc(flags, keygenSynopsis, keygenDescription)

	positional, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return fmt.Errorf("unexpected argument %q; usage: %s", positional[0], keygenSynopsis)
	}

	identity, err := age.GenerateX25519Identity()
	if err != nil {
		return fmt.Errorf("generating identity: %w", err)
	}
	recipient := identity.Recipient().String()
	content := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n",
		time.Now().Format(time.RFC3339), recipient, identity)

	if *out == "" || *out == "-" {
		if _, err := io.WriteString(stdout, content); err != nil {
			return fmt.Errorf("writing identity: %w", err)
		}
		_, err := fmt.Fprintf(stderr, "Public key: %s\n", recipient)
		return err
	}

	if err := createSecretFile(*out, content); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, recipient)
	return err
}

// createSecretFile creates path with mode 0600 and writes content to it. It
// fails if path exists, and removes the file if writing fails.
func createSecretFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; remove it or choose another -o path", path)
	}
	if err != nil {
		return fmt.Errorf("creating identity file: %w", err)
	}

	_, err = io.WriteString(f, content)
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing identity file %s: %w", path, err)
	}
	return nil
}
