package claimsdata

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Total is the number and the sum of the claims for one diagnosis code.
type Total struct {
	DiagnosisCode string
	Claims        int64
	AmountCents   int64
}

// RowError reports an invalid row of a claims CSV.
type RowError struct {
	Line int // line number in the input, starting at 1
	Err  error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// Totals reads a claims CSV, which must start with [Header], and returns
// one [Total] per diagnosis code, sorted by code. Amounts are summed exactly
// in cents. The first invalid row stops the reading with a [*RowError]
// that names its line.
func Totals(r io.Reader) ([]Total, error) {
	in := csv.NewReader(r)
	in.FieldsPerRecord = len(Header)
	in.ReuseRecord = true

	first, err := in.Read()
	if err == io.EOF {
		return nil, &RowError{Line: 1, Err: errors.New("input is empty, expected the header row")}
	}
	if err != nil {
		return nil, csvError(err)
	}
	if !slices.Equal(first, Header) {
		return nil, &RowError{Line: 1, Err: fmt.Errorf("header is %q, expected %q",
			strings.Join(first, ","), strings.Join(Header, ","))}
	}

	byCode := make(map[string]*Total)
	for {
		record, err := in.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}

		line, _ := in.FieldPos(0)
		code, cents, err := parseClaim(record)
		if err != nil {
			return nil, &RowError{Line: line, Err: err}
		}

		t := byCode[code]
		if t == nil {
			t = &Total{DiagnosisCode: code}
			byCode[code] = t
		}
		t.Claims++
		t.AmountCents += cents
		if t.AmountCents < 0 {
			return nil, &RowError{Line: line, Err: fmt.Errorf("total for %s overflows", code)}
		}
	}

	totals := make([]Total, 0, len(byCode))
	for _, t := range byCode {
		totals = append(totals, *t)
	}
	slices.SortFunc(totals, func(a, b Total) int { return strings.Compare(a.DiagnosisCode, b.DiagnosisCode) })
	return totals, nil
}

// csvError turns an encoding/csv error into a RowError with its line.
func csvError(err error) error {
	var parseErr *csv.ParseError
	if errors.As(err, &parseErr) {
		return &RowError{Line: parseErr.StartLine, Err: parseErr.Err}
	}
	return fmt.Errorf("reading claims: %w", err)
}

// parseClaim validates one record and returns its diagnosis code and
// amount in cents.
func parseClaim(record []string) (code string, cents int64, err error) {
	if record[0] == "" {
		return "", 0, errors.New("claim_id is empty")
	}
	if strings.TrimSpace(record[1]) == "" {
		return "", 0, errors.New("name is empty")
	}
	if _, err := time.Parse(time.DateOnly, record[2]); err != nil {
		return "", 0, fmt.Errorf("invalid date_of_birth %q: expected YYYY-MM-DD", record[2])
	}

	code = record[3]
	if !isICD10Code(code) {
		return "", 0, fmt.Errorf("invalid diagnosis_code %q: expected an ICD-10 code such as E11.9", code)
	}

	cents, err = ParseCents(record[4])
	if err != nil {
		return "", 0, err
	}
	return code, cents, nil
}

// isICD10Code reports whether code has the ICD-10-CM shape: a letter, two
// characters of which the first is a digit, then optionally a dot and one
// to four letters or digits ("I10", "E11.9", "S93.401A").
func isICD10Code(code string) bool {
	category, subcategory, hasDot := strings.Cut(code, ".")
	if len(category) != 3 || !isUpper(category[0]) || !isDigit(category[1]) ||
		!(isDigit(category[2]) || isUpper(category[2])) {
		return false
	}
	if !hasDot {
		return true
	}
	if len(subcategory) < 1 || len(subcategory) > 4 {
		return false
	}
	for i := 0; i < len(subcategory); i++ {
		if !isDigit(subcategory[i]) && !isUpper(subcategory[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// WriteTotals writes totals as a CSV with [TotalsHeader], amounts in
// dollars with two decimal places.
func WriteTotals(w io.Writer, totals []Total) error {
	out := csv.NewWriter(w)
	if err := out.Write(TotalsHeader); err != nil {
		return err
	}
	for _, t := range totals {
		record := []string{t.DiagnosisCode, strconv.FormatInt(t.Claims, 10), FormatCents(t.AmountCents)}
		if err := out.Write(record); err != nil {
			return err
		}
	}
	out.Flush()
	return out.Error()
}
