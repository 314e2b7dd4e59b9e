package sealcmd

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"cove.dev/cove/internal/sealed"
)

const sealSynopsis = "cove seal --kbs URL --key NAME [--token-file FILE] [--ca-file FILE] -o OUT IN"

const sealDescription = `
Seal encrypts the job input IN into the sealed file OUT. It generates a
fresh 256-bit data key, asks the broker to wrap it with the Vault Transit key
NAME, and encrypts IN under the data key with Tink AES256_GCM_HKDF_1MB. OUT
contains the wrapped data key but never the data key itself: the broker
releases it only to a guest that passes attestation for a job granted NAME.

The file is written to OUT.partial and renamed to OUT when complete.`

// Seal implements "cove seal": it encrypts a file into a sealed file whose
// data key is wrapped by the broker's admin API. The data key is never
// printed or written to disk.
func Seal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cove seal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kbsURL := fs.String("kbs", "", "base `URL` of the broker, https only (for example https://kbs.example:8443)")
	keyName := fs.String("key", "", "`NAME` of the Transit key on the broker that wraps the data key")
	tokenFile := fs.String("token-file", "", "`FILE` containing the broker's admin bearer token")
	caFile := fs.String("ca-file", "",
		"PEM `FILE` of the CA certificates that the broker's certificate must chain to\n(default: the system roots)")
	out := fs.String("o", "", "`path` of the sealed file to write (required)")
	fs.Usage = usageFunc(fs, sealSynopsis, sealDescription)

	positional, err := parseArgs(fs, args)
	if err != nil {
		return err
	}

	switch {
	case len(positional) == 0:
		return fmt.Errorf("missing input file; usage: %s", sealSynopsis)
	case len(positional) > 1:
		return fmt.Errorf("expected one input file, got %d (%s)", len(positional), strings.Join(positional, " "))
	case *kbsURL == "":
		return errors.New("missing --kbs: pass the broker's base URL, for example https://kbs.example:8443")
	case *keyName == "":
		return errors.New("missing --key: pass the name of the Transit key that the broker grants to the job")
	case *out == "":
		return errors.New("missing -o: pass the path of the sealed file to write")
	}

	if err := sealed.ValidateKeyName(*keyName); err != nil {
		return fmt.Errorf("invalid --key: %w", err)
	}
	base, err := parseBrokerURL(*kbsURL)
	if err != nil {
		return err
	}

	broker, err := newBrokerClient(base, *tokenFile, *caFile)
	if err != nil {
		return err
	}
	return sealFile(ctx, broker, *keyName, positional[0], *out)
}

func parseBrokerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("invalid --kbs URL %q: %w", raw, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("invalid --kbs URL %q: it must start with https://, "+
			"because the admin token and the data key are sent to it", raw)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("invalid --kbs URL %q: expected https://host[:port][/path]", raw)
	}
	return u, nil
}

// sealFile wraps a fresh data key with the broker and writes the sealed
// form of the file at inPath to outPath.
func sealFile(ctx context.Context, broker *brokerClient, keyName, inPath, outPath string) error {
	in, err := os.Open(inPath)
	if err != nil {
		return fmt.Errorf("opening input: %w", err)
	}
	defer in.Close()
	if info, err := in.Stat(); err != nil {
		return fmt.Errorf("opening input: %w", err)
	} else if info.IsDir() {
		return fmt.Errorf("input %s is a directory, expected a file", inPath)
	}

	dataKey := make([]byte, sealed.DataKeySize)
	defer clear(dataKey)
	if _, err := rand.Read(dataKey); err != nil {
		return fmt.Errorf("generating data key: %w", err)
	}

	wrapped, err := broker.wrap(ctx, keyName, dataKey)
	if err != nil {
		return err
	}

	header := sealed.Header{
		Key:        keyName,
		WrappedKey: wrapped,
		Resource:   sealed.ResourcePath(keyName, wrapped),
		KBS:        broker.base.String(),
		Stream:     sealed.StreamAES256GCMHKDF1MB,
	}
	return writeFileAtomically(outPath, 0o644, func(f io.Writer) error {
		w, err := sealed.NewWriter(f, dataKey, header)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, contextReader{ctx: ctx, r: in}); err != nil {
			return fmt.Errorf("sealing %s: %w", inPath, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("sealing %s: %w", inPath, err)
		}
		return nil
	})
}
