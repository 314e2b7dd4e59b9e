// Command gen writes a CSV of synthetic insurance claims for Cove's demo:
//
//	gen [-rows N] [-seed S] [-o FILE]
//
// Every record is synthetic. Names are random pairs of common given names
// and surnames, and no record describes a real person. The same -seed
// always produces the same file. See package claimsdata for the columns.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"cove.dev/cove/examples/claims/claimsdata"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.Int("rows", 100000, "number of claims to write, not counting the header row")
	seed := fs.Int64("seed", 1, "seed of the random generator; the same seed writes the same file")
	out := fs.String("o", "", "`path` of the CSV file to write (default: standard output)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: gen [-rows N] [-seed S] [-o FILE]\n\nWrites a CSV of synthetic claims.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *rows < 0 {
		fmt.Fprintf(stderr, "gen: -rows is %d, expected 0 or more\n", *rows)
		return 2
	}

	if err := generate(*out, *rows, *seed, stdout); err != nil {
		fmt.Fprintf(stderr, "gen: %v\n", err)
		return 1
	}
	return 0
}

func generate(path string, rows int, seed int64, stdout io.Writer) error {
	if path == "" || path == "-" {
		return claimsdata.Generate(stdout, rows, seed)
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := claimsdata.Generate(f, rows, seed); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
