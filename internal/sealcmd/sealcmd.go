// Package sealcmd implements the cove subcommands that handle job files on
// the submitter's machine. [Seal] encrypts a job input into a sealed file.
// [Keygen] creates the age identity that job outputs are encrypted to, and
// [Unseal] decrypts a job output with that identity.
//
// Each function takes the arguments after the subcommand name and writes
// its output to stdout and its usage and flag errors to stderr. A function
// returns [flag.ErrHelp] after printing the help text for -h, and an error
// for every failure, which the caller prints and turns into a non-zero exit
// status.
package sealcmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// parseArgs parses the flags of fs from args and returns the positional
// arguments. Unlike fs.Parse alone, it also accepts flags after a
// positional argument, so "cove unseal result.cove -o out.csv" works. All
// arguments after "--" are positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// usageFunc returns a flag.FlagSet Usage function that prints the synopsis,
// a description and the flag defaults.
func usageFunc(fs *flag.FlagSet, synopsis, description string) func() {
	return func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: %s\n\n%s\n\nFlags:\n", synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
}

// writeFileAtomically writes a file through path+".partial" and renames it
// to path only after write returned nil and the data reached the disk, so
// a failed or interrupted run never leaves a file at path that looks
// complete. The file gets permissions perm before any data is written.
func writeFileAtomically(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	partial := path + ".partial"
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("creating output file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(partial)
		}
	}()

	// O_CREATE applies perm only to a new file, and a stale .partial file
	// from an interrupted run may have other permissions.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("setting permissions of %s: %w", partial, err)
	}

	if err := write(f); err != nil {
		return err
	}

	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", partial, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", partial, err)
	}
	if err := os.Rename(partial, path); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", partial, path, err)
	}
	return nil
}

// contextReader fails the next Read once ctx is done, so that a long copy
// stops when the command is canceled.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
