// Package claimsdata generates and summarizes the synthetic insurance
// claims that Cove's demo seals and its example workload processes.
//
// Every record is synthetic: names are random pairs from short lists of
// common given names and surnames, and dates of birth, diagnosis codes and
// amounts are drawn at random. No record describes a real person.
//
// The CSV columns are claim_id, name, date_of_birth (YYYY-MM-DD),
// diagnosis_code (ICD-10-CM) and amount (dollars with exactly two decimal
// places).
package claimsdata

import (
	"fmt"
	"strconv"
	"strings"
)

// Header is the header row of a claims CSV file.
var Header = []string{"claim_id", "name", "date_of_birth", "diagnosis_code", "amount"}

// TotalsHeader is the header row of the CSV written by [WriteTotals].
var TotalsHeader = []string{"diagnosis_code", "claims", "total_amount"}

// FormatCents formats an amount in cents as dollars with two decimal
// places, for example 12345 as "123.45".
func FormatCents(cents int64) string {
	sign := ""
	if cents < 0 {
		sign = "-"
		cents = -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// maxAmountCents bounds a single claim so that sums of up to 2^31 claims
// cannot overflow int64.
const maxAmountCents = 1<<32 - 1

// ParseCents parses a non-negative amount written with exactly two decimal
// places, such as "123.45", into cents, with no floating-point rounding.
func ParseCents(s string) (int64, error) {
	dollars, cents, ok := strings.Cut(s, ".")
	if !ok || len(cents) != 2 || dollars == "" || !isDigits(dollars) || !isDigits(cents) {
		return 0, fmt.Errorf("invalid amount %q: expected dollars and exactly two decimal places, such as 123.45", s)
	}
	if len(dollars) > 1 && dollars[0] == '0' {
		return 0, fmt.Errorf("invalid amount %q: leading zero", s)
	}

	d, err := strconv.ParseInt(dollars, 10, 64)
	if err != nil || d > maxAmountCents/100 {
		return 0, fmt.Errorf("invalid amount %q: larger than the maximum %s", s, FormatCents(maxAmountCents))
	}
	c, _ := strconv.ParseInt(cents, 10, 64)

	total := d*100 + c
	if total > maxAmountCents {
		return 0, fmt.Errorf("invalid amount %q: larger than the maximum %s", s, FormatCents(maxAmountCents))
	}
	return total, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
