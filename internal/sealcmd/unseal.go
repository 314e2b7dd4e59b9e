package sealcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

const unsealSynopsis = "cove unseal --identity FILE [-o OUT] RESULT"

const unsealDescription = `
Unseal decrypts RESULT, the age-encrypted output of a job, with the age
identities in the identity file (as written by "cove keygen" or age-keygen)
and writes the plaintext to OUT, or to standard output.

OUT is written to OUT.partial and renamed to OUT only when RESULT decrypted
completely. On standard output, a truncated or altered RESULT fails only
after the plaintext before the damaged chunk has been written.`

// Unseal implements "cove unseal": it decrypts an age file with the
// identities in an identity file.
func Unseal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cove unseal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	identityFile := fs.String("identity", "",
		"`FILE` of age identities (AGE-SECRET-KEY-1... lines, # comments allowed) (required)")
	out := fs.String("o", "", "`path` of the plaintext file to write (default: standard output)")
	fs.Usage = usageFunc(fs, unsealSynopsis, unsealDescription)

	positional, err := parseArgs(fs, args)
	if err != nil {
		return err
	}

	switch {
	case len(positional) == 0:
		return fmt.Errorf("missing job output file; usage: %s", unsealSynopsis)
	case len(positional) > 1:
		return fmt.Errorf("expected one job output file, got %d (%s)", len(positional), strings.Join(positional, " "))
	case *identityFile == "":
		return errors.New("missing --identity: pass the identity file created by cove keygen")
	}

	identities, err := readIdentities(*identityFile)
	if err != nil {
		return err
	}

	inPath := positional[0]
	in, err := os.Open(inPath)
	if err != nil {
		return fmt.Errorf("opening job output: %w", err)
	}
	defer in.Close()

	plaintext, err := age.Decrypt(in, identities...)
	if err != nil {
		return decryptError(err, inPath, *identityFile)
	}
	plaintext = contextReader{ctx: ctx, r: plaintext}

	if *out == "" || *out == "-" {
		if _, err := io.Copy(stdout, plaintext); err != nil {
			return fmt.Errorf("decrypting %s: %w", inPath, err)
		}
		return nil
	}

	// The plaintext is job output, which may contain the same personal
	// data as the inputs, so only the owner may read the file.
	return writeFileAtomically(*out, 0o600, func(f io.Writer) error {
		if _, err := io.Copy(f, plaintext); err != nil {
			return fmt.Errorf("decrypting %s: %w", inPath, err)
		}
		return nil
	})
}

func readIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading --identity: %w", err)
	}
	defer f.Close()

	identities, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("reading --identity %s: %w", path, err)
	}
	return identities, nil
}

func decryptError(err error, inPath, identityFile string) error {
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return fmt.Errorf("no identity in %s can decrypt %s: the job output was encrypted to another recipient",
			identityFile, inPath)
	}
	return fmt.Errorf("decrypting %s: not a valid age file, or it is corrupt: %w", inPath, err)
}
