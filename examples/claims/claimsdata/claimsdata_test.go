package claimsdata

import (
	"bytes"
	"encoding/csv"
	"errors"
	"strings"
	"testing"
)

const handMadeClaims = `claim_id,name,date_of_birth,diagnosis_code,amount
C1,Ada Byron,1961-04-12,E11.9,125.50
C2,Alan Turing,1954-06-07,I10,0.99
C3,Grace Hopper,1946-12-09,E11.9,74.50
C4,"Lovelace, Ada",1980-02-29,S93.401A,1000.01
C5,Edsger Dijkstra,1930-05-11,I10,0.01
C6,Barbara Liskov,1939-11-07,E11.9,4294967.29
`

func TestTotalsOfHandMadeInput(t *testing.T) {
	got, err := Totals(strings.NewReader(handMadeClaims))
	if err != nil {
		t.Fatal(err)
	}
	want := []Total{
		{DiagnosisCode: "E11.9", Claims: 3, AmountCents: 12550 + 7450 + 429496729},
		{DiagnosisCode: "I10", Claims: 2, AmountCents: 100},
		{DiagnosisCode: "S93.401A", Claims: 1, AmountCents: 100001},
	}
	if len(got) != len(want) {
		t.Fatalf("Totals returned %d codes, expected %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("total %d = %+v, expected %+v", i, got[i], want[i])
		}
	}
}

func TestWriteTotalsFormat(t *testing.T) {
	totals, err := Totals(strings.NewReader(handMadeClaims))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteTotals(&buf, totals); err != nil {
		t.Fatal(err)
	}
	want := "diagnosis_code,claims,total_amount\n" +
		"E11.9,3,4295167.29\n" +
		"I10,2,1.00\n" +
		"S93.401A,1,1000.01\n"
	if buf.String() != want {
		t.Errorf("output =\n%s\nexpected\n%s", buf.String(), want)
	}
}

func TestTotalsOfHeaderOnly(t *testing.T) {
	got, err := Totals(strings.NewReader("claim_id,name,date_of_birth,diagnosis_code,amount\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("Totals = %+v, expected none", got)
	}
}

func TestTotalsRejectsInvalidRows(t *testing.T) {
	const header = "claim_id,name,date_of_birth,diagnosis_code,amount\n"
	const good = "C1,Ada Byron,1961-04-12,E11.9,125.50\n"
	tests := []struct {
		name   string
		input  string
		line   int
		errSub string
	}{
		{"empty input", "", 1, "empty"},
		{"wrong header", "id,name,dob,code,amount\n" + good, 1, "header is"},
		{"missing field", header + good + "C2,Alan Turing,1954-06-07,125.50\n", 3, "wrong number of fields"},
		{"extra field", header + good + good + "C3,x,1954-06-07,I10,1.00,9\n", 4, "wrong number of fields"},
		{"bare quote", header + "C2,Al\"an,1954-06-07,I10,1.00\n", 2, "quote"},
		{"empty claim id", header + ",Alan Turing,1954-06-07,I10,1.00\n", 2, "claim_id"},
		{"empty name", header + "C2, ,1954-06-07,I10,1.00\n", 2, "name"},
		{"bad date", header + "C2,Alan Turing,1954-13-07,I10,1.00\n", 2, "date_of_birth"},
		{"bad code", header + "C2,Alan Turing,1954-06-07,e11.9,1.00\n", 2, "diagnosis_code"},
		{"code too long", header + "C2,Alan Turing,1954-06-07,E11.12345,1.00\n", 2, "diagnosis_code"},
		{"one decimal", header + good + "C2,Alan Turing,1954-06-07,I10,1.5\n", 3, "amount"},
		{"no decimals", header + "C2,Alan Turing,1954-06-07,I10,15\n", 2, "amount"},
		{"negative", header + "C2,Alan Turing,1954-06-07,I10,-1.00\n", 2, "amount"},
		{"float syntax", header + "C2,Alan Turing,1954-06-07,I10,1e3.00\n", 2, "amount"},
		{"too large", header + "C2,Alan Turing,1954-06-07,I10,99999999999.00\n", 2, "maximum"},
		{"quoted newline shifts lines", header + "C2,\"Alan\nTuring\",1954-06-07,I10,1.00\n" +
			"C3,Grace Hopper,1946-12-09,I10,x\n", 4, "amount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Totals(strings.NewReader(tt.input))
			var rowErr *RowError
			if !errors.As(err, &rowErr) {
				t.Fatalf("error %v is not a *RowError", err)
			}
			if rowErr.Line != tt.line {
				t.Errorf("line = %d, expected %d (error: %v)", rowErr.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not mention %q", err, tt.errSub)
			}
		})
	}
}

func TestParseCents(t *testing.T) {
	valid := map[string]int64{"0.00": 0, "0.01": 1, "1.00": 100, "123.45": 12345, "42949672.95": 4294967295}
	for s, want := range valid {
		got, err := ParseCents(s)
		if err != nil {
			t.Errorf("ParseCents(%q): %v", s, err)
		} else if got != want {
			t.Errorf("ParseCents(%q) = %d, expected %d", s, got, want)
		}
	}

	for _, s := range []string{"", ".00", "1.", "1.0", "1.000", "01.00", "+1.00", "1,00", " 1.00", "42949672.96"} {
		if _, err := ParseCents(s); err == nil {
			t.Errorf("ParseCents(%q) succeeded, expected an error", s)
		}
	}
}

func TestFormatCents(t *testing.T) {
	for cents, want := range map[int64]string{0: "0.00", 5: "0.05", 100: "1.00", 123456: "1234.56", -250: "-2.50"} {
		if got := FormatCents(cents); got != want {
			t.Errorf("FormatCents(%d) = %q, expected %q", cents, got, want)
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	var a, b, c bytes.Buffer
	if err := Generate(&a, 1000, 42); err != nil {
		t.Fatal(err)
	}
	if err := Generate(&b, 1000, 42); err != nil {
		t.Fatal(err)
	}
	if err := Generate(&c, 1000, 43); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two runs with seed 42 wrote different files")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("seeds 42 and 43 wrote the same file")
	}
}

// TestGenerateGolden pins the output of one seed, so that a change to the
// lists or to the generator, which would change every demo file, is seen.
func TestGenerateGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Generate(&buf, 5, 7); err != nil {
		t.Fatal(err)
	}
	want := `claim_id,name,date_of_birth,diagnosis_code,amount
C10000001,Sarah Brown,1976-09-22,J20.9,232.23
C10000002,Thomas Taylor,1937-11-07,E11.9,448.07
C10000003,Wei Garcia,1952-07-14,S93.401A,900.00
C10000004,Fatima Johnson,2000-07-18,F32.9,1464.53
C10000005,James Nguyen,1967-07-10,L30.9,52.43
`
	if buf.String() != want {
		t.Errorf("Generate(5 rows, seed 7) =\n%s\nexpected\n%s", buf.String(), want)
	}
}

func TestGenerateRowsAreValid(t *testing.T) {
	var buf bytes.Buffer
	if err := Generate(&buf, 20000, 3); err != nil {
		t.Fatal(err)
	}

	records, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 20001 {
		t.Fatalf("got %d records, expected the header and 20000 rows", len(records))
	}

	ids := make(map[string]bool)
	codes := make(map[string]bool)
	for i, record := range records[1:] {
		code, _, err := parseClaim(record)
		if err != nil {
			t.Fatalf("row %d %q: %v", i+1, record, err)
		}
		codes[code] = true
		if ids[record[0]] {
			t.Fatalf("row %d repeats claim_id %s", i+1, record[0])
		}
		ids[record[0]] = true
		if record[2] < "1930-01-01" || record[2] > "2006-12-31" {
			t.Errorf("row %d: date_of_birth %s outside 1930 to 2006", i+1, record[2])
		}
	}
	if len(codes) != len(diagnoses) {
		t.Errorf("20000 rows use %d diagnosis codes, expected all %d", len(codes), len(diagnoses))
	}
}

func TestTotalsConsistentWithGenerate(t *testing.T) {
	const rows = 10000
	var buf bytes.Buffer
	if err := Generate(&buf, rows, 11); err != nil {
		t.Fatal(err)
	}

	// Sum the generated amounts independently of Totals, by splitting lines.
	wantClaims := make(map[string]int64)
	wantCents := make(map[string]int64)
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n")[1:] {
		fields := strings.Split(line, ",")
		dollars, cents, _ := strings.Cut(fields[4], ".")
		var d, c int64
		for _, ch := range dollars {
			d = d*10 + int64(ch-'0')
		}
		for _, ch := range cents {
			c = c*10 + int64(ch-'0')
		}
		wantClaims[fields[3]]++
		wantCents[fields[3]] += d*100 + c
	}

	totals, err := Totals(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(totals) != len(wantClaims) {
		t.Fatalf("Totals returned %d codes, expected %d", len(totals), len(wantClaims))
	}
	var claims int64
	for i, total := range totals {
		if i > 0 && totals[i-1].DiagnosisCode >= total.DiagnosisCode {
			t.Errorf("codes not sorted: %s before %s", totals[i-1].DiagnosisCode, total.DiagnosisCode)
		}
		if total.Claims != wantClaims[total.DiagnosisCode] {
			t.Errorf("%s: claims = %d, expected %d", total.DiagnosisCode, total.Claims, wantClaims[total.DiagnosisCode])
		}
		if total.AmountCents != wantCents[total.DiagnosisCode] {
			t.Errorf("%s: amount = %d cents, expected %d", total.DiagnosisCode, total.AmountCents,
				wantCents[total.DiagnosisCode])
		}
		claims += total.Claims
	}
	if claims != rows {
		t.Errorf("claims add up to %d, expected %d", claims, rows)
	}
}

func TestGenerateRejectsNegativeRows(t *testing.T) {
	if err := Generate(&bytes.Buffer{}, -1, 1); err == nil {
		t.Error("Generate(-1 rows) succeeded, expected an error")
	}
}
