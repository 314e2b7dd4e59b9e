// Command totals is the example workload that runs inside the Cove guest.
// It reads a claims CSV, as written by gen, and writes the number and the
// sum of the claims per diagnosis code:
//
//	totals FILE|-
//
// The output is a CSV with the header diagnosis_code,claims,total_amount,
// sorted by code, with amounts summed exactly in cents. An invalid row
// stops it with exit status 1 and an error that names the line. It uses
// only the standard library, so it builds with CGO_ENABLED=0 into a
// static binary for the guest.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"cove.dev/cove/examples/claims/claimsdata"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "Usage: totals FILE|-\n\nReads a claims CSV (- for standard input) and writes claims and totals per diagnosis code.")
		return 2
	}

	in := stdin
	name := "standard input"
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			fmt.Fprintf(stderr, "totals: %v\n", err)
			return 1
		}
		defer f.Close()
		in, name = f, args[0]
	}

	totals, err := claimsdata.Totals(bufio.NewReaderSize(in, 1<<16))
	if err != nil {
		fmt.Fprintf(stderr, "totals: %s: %v\n", name, err)
		return 1
	}

	out := bufio.NewWriter(stdout)
	err = claimsdata.WriteTotals(out, totals)
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintf(stderr, "totals: writing output: %v\n", err)
		return 1
	}
	return 0
}
